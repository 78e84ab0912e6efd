"""Fit the emulator's correction (``bayesfm.model.emulator_correction``) to a model's residuals.

Run:  python validation/fit_emulator_correction.py [--model PATH] [--extinction NPZ]
      [--config configs/train/emulator_correction.json] --out runs/emulator_correction/model
      (about 5 minutes on this CPU)

Fits the correction on the train split's stars at their APOGEE labels with the cleaned A_K of
the model's training (``--extinction``, default the shipped model's; stars it does not cover
are left out), then the emulator's sigma factors on the validation split for the corrected
means, and saves the model to ``--out`` (.safetensors and .json). A recipe with
``latent_a_k`` refits each train star's A_K with the correction: the refitted values are
saved beside the model as ``<out>_extinction.npz`` (the others' as before), the file the
shipped model keeps as foundation_model_extinction.npz. Installing it as the shipped
model (``--out bayesfm/data/foundation_model``) is followed by ``python validation/ship_model.py
--likelihood-only``, which refits the prior, noise model and label scatter on it.
"""

import argparse
from pathlib import Path

import numpy as np

from bayesfm.common.jsonio import from_json, load_json
from bayesfm.model.emulator_correction_fit import (
    CorrectionConfig,
    carrying_correction,
    fit_emulator_correction,
    with_cleaned_a_k,
)
from bayesfm.model.emulator_sigma import with_fitted_sigma_factors
from bayesfm.model.extinction_fit import default_extinction_path, load_extinction, save_extinction
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="weights to correct (default: shipped)")
    parser.add_argument("--extinction", type=Path, default=default_extinction_path())
    parser.add_argument(
        "--config", type=Path, default=Path("configs/train/emulator_correction.json")
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = from_json(
        CorrectionConfig, load_json(args.config, "a correction recipe"), str(args.config)
    )
    model = FoundationModel.load(args.model)
    tokens = load_library(binning=model.vocabulary.binning).tokens
    train = with_cleaned_a_k(tokens.take(split_mask(tokens.source_id, "train")), args.extinction)
    fit = fit_emulator_correction(model, train, config)
    model = carrying_correction(model, fit, config)
    print(f"correction fitted on {model.info['emulator_correction']['train_stars']} train stars")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if config.latent_a_k is not None:
        _save_refitted_a_k(args.extinction, train.source_id, fit, args.out)
    model = with_fitted_sigma_factors(
        model, tokens.take(split_mask(tokens.source_id, "validation"))
    )
    model.save(args.out)
    print(f"wrote {args.out.with_suffix('.safetensors')} and its .json")


def _save_refitted_a_k(cleaned_path, source_id, fit, out):
    """``cleaned_path``'s A_K with the train stars' refitted by ``fit``, as ``<out>_extinction.npz``."""
    cleaned = load_extinction(cleaned_path)
    refitted = np.isfinite(fit.a_k)
    moved = fit.a_k[refitted] - np.array([cleaned[i][0] for i in source_id[refitted].tolist()])
    cleaned |= dict(
        zip(
            source_id[refitted].tolist(),
            zip(fit.a_k[refitted], fit.a_k_err[refitted], strict=True),
            strict=True,
        )
    )
    path = out.parent / f"{out.name}_extinction.npz"
    ids = np.array(sorted(cleaned))
    save_extinction(path, ids, *(np.array([cleaned[i][j] for i in ids.tolist()]) for j in (0, 1)))
    print(
        f"refitted A_K of {refitted.sum()} train stars (moved by a median "
        f"{np.median(moved):+.3f}, |moved| {np.median(np.abs(moved)):.3f} on the transformer's "
        f"scale) written to {path}"
    )


if __name__ == "__main__":
    main()
