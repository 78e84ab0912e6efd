"""Fit the emulator's correction (``bayesfm.model.emulator_correction``) to a model's residuals.

Run:  python validation/fit_emulator_correction.py [--model PATH] [--extinction NPZ]
      [--config configs/train/emulator_correction.json] --out runs/emulator_correction/model
      (about 5 minutes on this CPU)

Fits the correction on the train split's stars at their APOGEE labels with the cleaned A_K of
the model's training (``--extinction``, default the shipped model's; stars it does not cover
are left out), then the emulator's sigma factors on the validation split for the corrected
means, and saves the model to ``--out`` (.safetensors and .json). Installing it as the shipped
model (``--out bayesfm/data/foundation_model``) is followed by ``python validation/ship_model.py
--likelihood-only``, which refits the prior, noise model and label scatter on it.
"""

import argparse
from pathlib import Path

from bayesfm.common.jsonio import from_json, load_json
from bayesfm.model.emulator_correction_fit import (
    CorrectionConfig,
    with_cleaned_a_k,
    with_emulator_correction,
)
from bayesfm.model.emulator_sigma import with_fitted_sigma_factors
from bayesfm.model.extinction_fit import default_extinction_path
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
    model = with_emulator_correction(model, train, config)
    print(f"correction fitted on {model.info['emulator_correction']['train_stars']} train stars")
    model = with_fitted_sigma_factors(
        model, tokens.take(split_mask(tokens.source_id, "validation"))
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out.with_suffix('.safetensors')} and its .json")


if __name__ == "__main__":
    main()
