"""Fit the factors on the shipped model's predicted label sigma on the validation split.

Run:  python validation/fit_sigma_scale.py

For the spectra -> labels task (XP flux and colours in, labels out) each label's factor
makes 68.3% of validation stars satisfy |mean - APOGEE| < sqrt((factor sigma)^2 + APOGEE
error^2). Writes bayesfm/data/sigma_scale.json; never uses test stars.
"""

from bayesfm.common.metrics import coverage_within
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.predict import TASKS, predict
from bayesfm.model.sigma_scale import SigmaScale, default_sigma_scale_path, fit_sigma_factor
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask

TASK = "spectra_to_labels"


def main():
    model = FoundationModel.load()
    tokens = load_library(binning=model.vocabulary.binning).tokens
    stars = tokens.take(split_mask(tokens.source_id, "validation"))
    context_groups, request_groups = TASKS[TASK]
    context = list(model.vocabulary.names_in_group(*context_groups))
    request = list(model.vocabulary.names_in_group(*request_groups))
    mean, sigma = predict(model, stars, request, context=context)
    factors = {}
    for i, name in enumerate(request):
        truth, error = stars.column(name)
        factors[name] = fit_sigma_factor(mean[:, i], sigma[:, i], truth, error)
        before = coverage_within(mean[:, i], sigma[:, i], truth, error)
        after = coverage_within(mean[:, i], factors[name] * sigma[:, i], truth, error)
        print(f"{name:<8} factor {factors[name]:.3f}  within 1 sigma: {before:.3f} -> {after:.3f}")
    SigmaScale(TASK, factors).save(default_sigma_scale_path())
    print(f"{len(stars)} validation stars; wrote {default_sigma_scale_path()}")


if __name__ == "__main__":
    main()
