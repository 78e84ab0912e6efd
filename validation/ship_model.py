"""Install a trained model as the package default, with its learned prior and noise model.

Run:  python validation/ship_model.py --run runs/default

Writes into bayesfm/data/:
- foundation_model.safetensors / .json: the run's best (validation-split) weights, with the
  emulator's sigma factors (``bayesfm.model.emulator_sigma``) fitted on validation stars at
  their APOGEE labels, each star's A_K fitted through the emulator (prior N(ak_targ, 0.05 mag));
- label_prior.json: a Gaussian mixture over (teff, logg, fe_h, alpha_m, a_k) fitted on the
  train split's stars that have all five, with the cleaned A_K the run fitted (if it trained
  with latent extinction);
- foundation_model_extinction.npz: those cleaned A_K values and errors by source id;
- noise_model.json: the noise model fitted on validation stars (``bayesfm.noise_fit``): c and
  R from the residuals at their APOGEE labels (each star's A_K fitted through the emulator,
  prior N(ak_targ, 0.05 mag), refitted with the calibrated sigma) and at their best-fit
  labels, and the emulator's label-space error calibrated against APOGEE's four labels (not
  against ak_targ, a noisy label whose scatter is its own, not the emulator's: A_K gets no
  label-space error), one for giants and one for dwarfs (fitted logg below / above 3.5), and
  the Student-t degrees of freedom of the tokens from the stars' chi-squares at their APOGEE
  labels.
"""

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from bayesfm.bayes.noise_fit import fit_noise_model
from bayesfm.bayes.noise_model import default_noise_path
from bayesfm.bayes.priors import default_prior_path, fit_gaussian_mixture
from bayesfm.model.emulator import make_emulator
from bayesfm.model.emulator_sigma import fit_emulator_sigma_factors
from bayesfm.model.extinction_fit import clean_extinction, default_extinction_path, load_extinction
from bayesfm.model.foundation_model import FoundationModel, default_model_path
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

PRIOR_COMPONENTS = 16
SEED = 0
GIANT_DWARF_LOGG = 3.5  # one label-space error for giants, one for dwarfs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/default", help="training output folder")
    args = parser.parse_args()

    run = Path(args.run)
    model = FoundationModel.load(run / "best")
    tokens = load_library(binning=model.vocabulary.binning).tokens
    cleaned = run / "best_extinction.npz"
    if cleaned.exists():
        tokens = _with_cleaned_extinction(tokens, load_extinction(cleaned))
        shutil.copyfile(cleaned, default_extinction_path())
        print(f"cleaned A_K of the train stars -> {default_extinction_path()}")
    inputs = tokens.values[:, tokens.index(LABEL_INPUTS)]
    complete = np.isfinite(inputs).all(axis=1)

    train = split_mask(tokens.source_id, "train") & complete
    prior = fit_gaussian_mixture(inputs[train], n_components=PRIOR_COMPONENTS, seed=SEED)
    prior.save(default_prior_path())
    print(f"prior: {PRIOR_COMPONENTS}-component mixture from {train.sum()} train stars")

    validation = tokens.take(split_mask(tokens.source_id, "validation"))
    labels = validation.index(LABEL_INPUTS)
    reference, reference_error = validation.values[:, labels], validation.errors[:, labels]
    ak_targ = reference[:, -1].copy()
    model = _without_closed_request_head(model, validation)
    model = _with_emulator_sigma_factors(model, validation, ak_targ)
    emulator = make_emulator(model)
    inputs, observed, errors, complete = _complete_with_cleaned_extinction(
        emulator, validation, ak_targ
    )
    reference[:, -1] = np.nan
    noise = fit_noise_model(
        emulator,
        inputs,
        observed,
        errors,
        reference[complete],
        reference_error[complete],
        label_error_split=(LABEL_INPUTS.index("logg"), GIANT_DWARF_LOGG),
    )
    noise.save(default_noise_path())
    off_diagonal = noise.correlation[~np.eye(len(noise.names), dtype=bool)]
    print(
        f"noise model from {complete.sum()} validation stars: error scales "
        f"{noise.error_scale.min():.2f}-{noise.error_scale.max():.2f}, median |correlation| "
        f"{np.median(np.abs(off_diagonal)):.2f}, label-space error (giants | dwarfs) "
        + ", ".join(
            f"{n} {giant:.3g} | {dwarf:.3g}"
            for n, giant, dwarf in zip(LABEL_INPUTS, *noise.label_error, strict=True)
        )
        + f"; Student-t tails with nu = {noise.tail_dof}"
    )

    model.save(default_model_path())
    size = default_model_path().stat().st_size
    print(f"model: {model.n_parameters} parameters, {size / 1e6:.2f} MB -> {default_model_path()}")


def _without_closed_request_head(model, validation):
    """``model`` without its request head if the head changes no validation star's emulated
    tokens by more than 1% of their errors (a gate that stayed shut); else ``model``."""
    if not model.config.head_width:
        return model
    stripped = model.without_request_head()
    inputs = validation.values[:, validation.index(LABEL_INPUTS)]
    inputs = inputs[np.isfinite(inputs).all(axis=1)]
    emulators = [make_emulator(m) for m in (model, stripped)]
    (mean, _), (stripped_mean, _) = (e.batch(inputs) for e in emulators)
    errors = validation.errors[:, validation.index(emulators[0].outputs)]
    change = np.nanmax(np.abs(mean - stripped_mean) / np.nanmedian(errors, axis=0))
    keep = change > 0.01
    print(
        f"request head: changes the emulated tokens by at most {change:.2g} of their median "
        f"errors on {len(inputs)} validation stars; {'kept' if keep else 'dropped'}"
    )
    return model if keep else stripped


def _with_emulator_sigma_factors(model, validation, ak_targ):
    """``model`` recording the emulator sigma factors fitted on the validation stars."""
    model = replace(
        model, info={k: v for k, v in model.info.items() if k != "emulator_sigma_factors"}
    )
    emulator = make_emulator(model)
    inputs, observed, errors, _ = _complete_with_cleaned_extinction(emulator, validation, ak_targ)
    factors = fit_emulator_sigma_factors(emulator, inputs, observed, errors)
    print(
        f"emulator sigma factors from {len(inputs)} validation stars: "
        f"{min(factors.values()):.2f}-{max(factors.values()):.2f} (median "
        f"{np.median(list(factors.values())):.2f})"
    )
    return replace(model, info={**model.info, "emulator_sigma_factors": factors})


def _complete_with_cleaned_extinction(emulator, stars, ak_targ):
    """The stars with all five inputs once A_K is fitted through ``emulator`` (prior
    N(ak_targ, 0.05 mag)): their inputs, observed tokens and errors, and which they are."""
    stars = clean_extinction(emulator, stars, ak_targ, progress=True)
    inputs = stars.values[:, stars.index(LABEL_INPUTS)]
    complete = np.isfinite(inputs).all(axis=1)
    columns = stars.index(emulator.outputs)
    observed, errors = (a[complete][:, columns] for a in (stars.values, stars.errors))
    return inputs[complete], observed, errors, complete


def _with_cleaned_extinction(tokens, cleaned: dict):
    """``tokens`` whose a_k is the cleaned one wherever the run fitted it."""
    a_k, a_k_err = (column.copy() for column in tokens.column("a_k"))
    for row, source_id in enumerate(tokens.source_id.tolist()):
        if source_id in cleaned:
            a_k[row], a_k_err[row] = cleaned[source_id]
    return tokens.with_column("a_k", a_k, a_k_err)


if __name__ == "__main__":
    main()
