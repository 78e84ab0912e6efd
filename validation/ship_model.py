"""Install a trained model as the package default, with its learned prior and noise model.

Run:  python validation/ship_model.py --run runs/default
      then  python validation/fit_a_k_scale.py   (puts A_K on ak_targ's scale)
      python validation/ship_model.py --likelihood-only   (the shipped weights: sigma
      factors, prior and noise model only)
      python validation/ship_model.py --label-scatter-only   (the shipped likelihood: its
      label scatter only)
      then  python validation/fit_proposal_emulator.py   (new weights or sigma factors leave
      the old proposal emulator unused: catalogues search with the emulator until it is refit)

Writes into bayesfm/data/:
- foundation_model.safetensors / .json: the run's best (validation-split) weights, with the
  emulator's sigma factors (``bayesfm.model.emulator_sigma``) fitted on validation stars at
  their APOGEE labels, each star's A_K fitted through the emulator without a prior;
- label_prior.json: a Gaussian mixture over (teff, logg, fe_h, alpha_m, a_k) fitted on the
  train split's stars that have all five, with the cleaned A_K the run fitted (if it trained
  with latent extinction; on ak_targ's scale where the model records one); if it trained with
  stand-in abundances, stars without fe_h and alpha_m get a donor's, as in training;
- foundation_model_extinction.npz: those cleaned A_K values and errors by source id;
- noise_model.json: the noise model fitted on validation stars (``bayesfm.noise_fit``): c, R
  and the Student-t degrees of freedom from the residuals at their APOGEE labels (each star's
  A_K fitted through the emulator, prior N(ak_targ, 0.05 mag), with the calibrated sigma),
  and the label scatter between the emulator's labels and APOGEE's four, measured on the
  posteriors of in-domain validation stars, one per quarter of their flux noise levels
  (``bayesfm.infer.label_scatter``; A_K gets none: ak_targ is a noisy label whose scatter
  is its own).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

from bayesfm.bayes.noise_fit import fit_noise_model
from bayesfm.bayes.noise_model import default_noise_path
from bayesfm.bayes.priors import GaussianMixturePrior, default_prior_path, fit_gaussian_mixture
from bayesfm.infer.label_scatter import fit_label_scatter
from bayesfm.infer.setup import StarInference, amortized_labels
from bayesfm.infer.trust import TrustCriteria, amortized_inside
from bayesfm.model.abundance_donors import AbundanceDonors
from bayesfm.model.emulator import a_k_scale_of, make_emulator
from bayesfm.model.emulator_sigma import with_fitted_sigma_factors
from bayesfm.model.extinction_fit import (
    clean_extinction,
    default_extinction_path,
    load_extinction,
)
from bayesfm.model.foundation_model import FoundationModel, default_model_path
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

PRIOR_COMPONENTS = 48
SEED = 0
SCATTER_STARS = 3200  # validation stars on which the label scatter is measured
SCATTER_CLASSES = 4  # classes of flux noise level, each with its own label scatter
SCATTER_SPLIT = ("logg", 3.5)  # giants and dwarfs get their own label scatter
# Student-t offsets (the survey's labels have outliers): per label, the best of these, down
# to a Cauchy's; truncated (noise_model.SCATTER_TRUNCATION), so that a draw's mean and sd exist
SCATTER_DOF = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/default", help="training output folder")
    parser.add_argument(
        "--likelihood-only",
        action="store_true",
        help="keep the shipped weights and cleaned A_K; refit the emulator's sigma factors, "
        "the prior and the noise model",
    )
    parser.add_argument(
        "--label-scatter-only",
        action="store_true",
        help="keep the shipped model, prior and noise model; refit the label scatter only",
    )
    args = parser.parse_args()
    if args.label_scatter_only:
        setup = StarInference.default()
        tokens = load_library(binning=setup.model.vocabulary.binning).tokens
        _save_with_label_scatter(setup, tokens.take(split_mask(tokens.source_id, "validation")))
        return

    if args.likelihood_only:
        model = FoundationModel.load()
        cleaned = default_extinction_path()
    else:
        model = FoundationModel.load(Path(args.run) / "best")
        cleaned = Path(args.run) / "best_extinction.npz"
    tokens = load_library(binning=model.vocabulary.binning).tokens
    if cleaned.exists():
        tokens = _with_cleaned_extinction(tokens, load_extinction(cleaned), a_k_scale_of(model))
        if not args.likelihood_only:
            shutil.copyfile(cleaned, default_extinction_path())
            print(f"cleaned A_K of the train stars -> {default_extinction_path()}")
    prior = _fit_prior(tokens, model.info["run_config"]["training"].get("stand_in_abundances"))

    validation = tokens.take(split_mask(tokens.source_id, "validation"))
    ak_targ = validation.values[:, validation.index(["a_k"])[0]].copy()
    if not args.likelihood_only:
        model = _without_closed_request_head(model, validation)
    model = with_fitted_sigma_factors(model, validation)
    _fit_noise_model(model, prior, validation, ak_targ)
    model.save(default_model_path())
    size = default_model_path().stat().st_size
    print(f"model: {model.n_parameters} parameters, {size / 1e6:.2f} MB")


def _fit_prior(tokens, stand_in_abundances: bool) -> GaussianMixturePrior:
    inputs = tokens.values[:, tokens.index(LABEL_INPUTS)][split_mask(tokens.source_id, "train")]
    if stand_in_abundances:
        donors = AbundanceDonors.from_labels(inputs)
        inputs = donors.fill(np.random.default_rng(SEED), inputs)
    inputs = inputs[np.isfinite(inputs).all(axis=1)]
    prior = fit_gaussian_mixture(inputs, n_components=PRIOR_COMPONENTS, seed=SEED)
    prior.save(default_prior_path())
    print(f"prior: {PRIOR_COMPONENTS}-component mixture from {len(inputs)} train stars")
    return prior


def _fit_noise_model(model, prior: GaussianMixturePrior, validation, ak_targ) -> None:
    """c, R and nu at the validation stars' APOGEE labels (A_K fitted), then the label
    scatter on the posteriors they give."""
    emulator = make_emulator(model)
    inputs, observed, errors, complete = _complete_with_cleaned_extinction(
        emulator, validation, ak_targ
    )
    noise = fit_noise_model(emulator, inputs, observed, errors)
    off_diagonal = noise.correlation[~np.eye(len(noise.names), dtype=bool)]
    print(
        f"noise model from {complete.sum()} validation stars: error scales "
        f"{noise.error_scale.min():.2f}-{noise.error_scale.max():.2f}, median |correlation| "
        f"{np.median(np.abs(off_diagonal)):.2f}, Student-t tails with nu = {noise.tail_dof}"
    )
    _save_with_label_scatter(
        StarInference(model, emulator, prior.distribution(), noise), validation
    )


def _save_with_label_scatter(setup: StarInference, validation) -> None:
    """Save the setup's noise model with the label scatter its posteriors give in-domain
    validation stars, per class of flux noise level and per giant or dwarf."""
    stars, reference, reference_error = scatter_stars(setup, validation)
    split = (LABEL_INPUTS.index(SCATTER_SPLIT[0]), SCATTER_SPLIT[1])
    noise = fit_label_scatter(
        setup,
        stars,
        reference,
        reference_error,
        SCATTER_CLASSES,
        split,
        SCATTER_DOF,
        progress=True,
    )
    noise.save(default_noise_path())
    print(
        f"label scatter from {len(stars)} stars, Student-t with nu = "
        + ", ".join(
            f"{n} {nu}" for n, nu in zip(LABEL_INPUTS, noise.label_scatter_dof, strict=True)
        )
        + f"; flux noise classes split at {noise.label_scatter_edges}:"
    )
    for side, rows in zip(("below", "at or above"), noise.label_scatter, strict=True):
        print(f" {SCATTER_SPLIT[0]} {side} {SCATTER_SPLIT[1]}:")
        for row in rows:
            print("  " + ", ".join(f"{n} {s:.3g}" for n, s in zip(LABEL_INPUTS, row, strict=True)))


def scatter_stars(setup, validation, limit=SCATTER_STARS):
    """The first ``limit`` stars of ``validation`` with APOGEE teff, logg, fe_h and alpha_m
    whose amortized labels lie in the training domain, their labels and errors (A_K: none,
    as ak_targ's scatter is its own)."""
    labels = validation.index(LABEL_INPUTS)
    reference, error = validation.values[:, labels].copy(), validation.errors[:, labels].copy()
    reference[:, LABEL_INPUTS.index("a_k")] = np.nan
    known = np.isfinite(reference[:, :4]).all(axis=1)
    amortized = amortized_labels(setup, validation)[0]
    rows = np.flatnonzero(known & amortized_inside(setup, amortized, TrustCriteria()))
    rows = rows[:limit]
    return validation.take(rows), reference[rows], error[rows]


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


def _complete_with_cleaned_extinction(emulator, stars, ak_targ):
    """The stars with all five inputs once A_K is fitted through ``emulator`` (prior
    N(ak_targ, 0.05 mag)): their inputs, observed tokens and errors, and which they are."""
    stars = clean_extinction(emulator, stars, ak_targ, progress=True)
    inputs = stars.values[:, stars.index(LABEL_INPUTS)]
    complete = np.isfinite(inputs).all(axis=1)
    columns = stars.index(emulator.outputs)
    observed, errors = (a[complete][:, columns] for a in (stars.values, stars.errors))
    return inputs[complete], observed, errors, complete


def _with_cleaned_extinction(tokens, cleaned: dict, scale):
    """``tokens`` whose a_k is the cleaned one wherever the run fitted it (on ak_targ's scale
    where the model records one)."""
    a_k, a_k_err = (column.copy() for column in tokens.column("a_k"))
    for row, source_id in enumerate(tokens.source_id.tolist()):
        if source_id in cleaned:
            a_k[row], a_k_err[row] = cleaned[source_id]
            if scale is not None:
                a_k[row], a_k_err[row] = scale.true_a_k(a_k[row]), a_k_err[row] * scale.slope
    return tokens.with_column("a_k", a_k, a_k_err)


if __name__ == "__main__":
    main()
