"""Emulator correction variants side by side on the validation split (choosing the recipe).

Run:  python benchmarks/correction_variants.py [--stars N] [--out FILE]   (~4 min per variant)

Each variant of ``CorrectionConfig`` (``VARIANTS``) is fitted on the shipped model's train
split with the cleaned A_K of its training (``with_cleaned_a_k``, as ``validation/fit_emulator_correction.py`` fits it),
and measured as ``benchmarks/emulator_fidelity.py`` measures emulators, with A_K fitted per
star, on the validation split's stars with all four labels; every variant keeps the shipped
model's sigma factors, so the comparison is of the means. Writes
benchmarks/correction_variants.json.
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

from emulator_fidelity import REGIONS_NM, measure, measured_stars

from bayesfm.model.emulator import make_emulator
from bayesfm.model.emulator_correction_fit import (
    CorrectionConfig,
    with_cleaned_a_k,
    with_emulator_correction,
)
from bayesfm.model.extinction_fit import default_extinction_path, free_range_of
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask

VARIANTS = {
    "labels in, 2 x 256": {"reads_means": False},
    "labels in, 2 x 128": {"reads_means": False, "hidden": (128, 128)},
    "labels in, 3 x 256": {"reads_means": False, "hidden": (256, 256, 256)},
    "labels in, 1 x 512": {"reads_means": False, "hidden": (512,)},
    "labels and means in, 2 x 256": {},
    "labels and means in, 2 x 256, seed 1": {"seed": 1},
    "labels and means in, 2 x 512": {"hidden": (512, 512)},
}
OUT = Path(__file__).with_suffix(".json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=None, help="first N validation stars")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model = FoundationModel.load()
    tokens = load_library(binning=model.vocabulary.binning).tokens
    train = tokens.take(split_mask(tokens.source_id, "train"))
    train = with_cleaned_a_k(train, default_extinction_path())
    stars = tokens.take(split_mask(tokens.source_id, "validation"))
    shipped = make_emulator(model)
    rows, inputs, observed, errors = measured_stars(stars, shipped.outputs, args.stars)
    a_k_range = free_range_of(model)
    results = {"shipped": measure("shipped", shipped, inputs, observed, errors, a_k_range)}
    for name, changes in VARIANTS.items():
        corrected = with_emulator_correction(model, train, replace(CorrectionConfig(), **changes))
        emulator = make_emulator(corrected)
        results[name] = measure(name, emulator, inputs, observed, errors, a_k_range)
    for name, result in results.items():
        row = result["a_k_fitted"]
        cells = " ".join(f"{row[r]['over_obs_error']:.3f}" for r in REGIONS_NM)
        print(f"{name:<40} {cells}  BP-RP {row['bp_rp_robust_sigma_mag']:.4f}")
    args.out.write_text(json.dumps({"n_stars": len(rows), "variants": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
