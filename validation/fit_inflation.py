"""Measure how the likelihood's error inflation moves calibration on validation stars.

Run:  python validation/fit_inflation.py [--stars 300] [--inflations 1 1.5 2 3] [--save]

For each inflation on the grid, importance-sampling posteriors (the catalogue's sampler) of
the same validation-split stars give, for teff, logg and fe_h, the coverage of the 68% and 95%
central intervals with APOGEE's errors folded in, and the robust sigma of the posterior
medians against APOGEE. The inflation whose coverages are closest to nominal (summed
absolute error) is printed, and with ``--save`` written into bayesfm/data/noise_model.json.
Posteriors are kept under runs/fit_inflation/ and reused on a rerun. Never uses test stars.
"""

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from bayesfm.bayes.noise_model import default_noise_path
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_draws
from bayesfm.common.metrics import robust_sigma
from bayesfm.infer.calibration import central_coverage, pit_values
from bayesfm.infer.setup import StarInference
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

LABELS = ("teff", "logg", "fe_h")
LEVELS = (0.68, 0.95)
OUT = Path("runs/fit_inflation")


def validation_stars(setup, n, seed):
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    labelled = np.isfinite(tokens.values[:, tokens.index(list(LABELS))]).all(axis=1)
    rows = np.nonzero(split_mask(tokens.source_id, "validation") & labelled)[0]
    rows = np.random.default_rng(seed).choice(rows, min(n, len(rows)), replace=False)
    return tokens.take(np.sort(rows))


def calibration_at(setup, stars, inflation, seed):
    """Coverage (68%, 95%) and robust sigma of medians per label at one inflation."""
    noise = dataclasses.replace(setup.noise, inflation=inflation)
    tuned = dataclasses.replace(setup, noise=noise)
    config = CatalogueConfig(
        method="importance", chunk_size=64, seed=seed, save_draws=True, outside_domain="posterior"
    )
    out = OUT / f"{len(stars)}_stars_seed_{seed}" / f"inflation_{inflation:.2f}"
    table = run_catalogue(stars, out, config, tuned)
    draws = load_draws(out)
    ok = table["ok"].fillna(False).to_numpy(bool)
    result = {"ok": float(ok.mean())}
    for name in LABELS:
        truth, error = (np.asarray(a, float) for a in stars.column(name))
        column = draws[:, :, LABEL_INPUTS.index(name)]
        coverage = central_coverage(pit_values(column, truth, error), levels=LEVELS)
        result[name] = {
            **coverage,
            "robust_sigma": float(robust_sigma(np.nanmedian(column, axis=1) - truth)),
        }
    return result


def coverage_error(result) -> float:
    return sum(abs(result[n][f"{level:.2f}"] - level) for n in LABELS for level in LEVELS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=300)
    parser.add_argument("--inflations", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="write the best into the package")
    args = parser.parse_args()

    setup = StarInference.default()
    stars = validation_stars(setup, args.stars, args.seed)
    print(f"{len(stars)} validation stars; coverage 68% / 95% and robust sigma of medians")
    errors = {}
    for inflation in args.inflations:
        result = calibration_at(setup, stars, inflation, args.seed)
        errors[inflation] = coverage_error(result)
        cells = "  ".join(
            f"{n} {result[n]['0.68']:.2f}/{result[n]['0.95']:.2f} {result[n]['robust_sigma']:.3g}"
            for n in LABELS
        )
        print(
            f"inflation {inflation:.2f}: {cells}  importance ok {result['ok']:.2f}  "
            f"coverage error {errors[inflation]:.2f}",
            flush=True,
        )
    best = min(errors, key=errors.get)
    print(f"closest to nominal: inflation {best:.2f}")
    if args.save:
        dataclasses.replace(setup.noise, inflation=best).save(default_noise_path())
        print(f"saved to {default_noise_path()}")


if __name__ == "__main__":
    main()
