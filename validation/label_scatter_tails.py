"""How heavy the label scatter's tails must be: per truncation of its Student-t offsets, the
label scatter fitted on in-domain validation stars (as ``ship_model.py`` fits it, with its
candidate degrees of freedom) and the coverage of APOGEE it gives there and on the test
split's in-domain stars. The shipped truncation (``noise_model.SCATTER_TRUNCATION``) is the
one whose validation coverage misses 68% and 95% least (sum of squares over the labels).

Run:  python validation/label_scatter_tails.py [--truncations 10 20 30]

The shipped model's unscattered importance posteriors of both splits (about 20 minutes each
on 2 cores) are kept in runs/label_scatter_tails/, per model, and reused. Coverage: APOGEE's
label inside the central 68% / 95% of the scattered draws convolved with its error (as the
report). Prints and writes validation/label_scatter_tails.json.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
from ship_model import SCATTER_CLASSES, SCATTER_DOF, SCATTER_SPLIT, scatter_stars

from bayesfm.infer.calibration import central_coverage, pit_values
from bayesfm.infer.label_scatter import importance_posteriors, scatter_from_draws
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

SEED = 0
COMPARED = LABEL_INPUTS[:4]  # A_K has no scatter


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truncations", type=float, nargs="+", default=[10.0, 20.0, 30.0])
    parser.add_argument("--work", type=Path, default=Path("runs/label_scatter_tails"))
    parser.add_argument("--json", type=Path, default=Path("validation/label_scatter_tails.json"))
    args = parser.parse_args()
    setup = StarInference.default()
    plain = dataclasses.replace(setup, noise=setup.noise.without_label_scatter())
    posteriors = {
        split: unscattered_posteriors(plain, split, args.work) for split in ("validation", "test")
    }
    split = (LABEL_INPUTS.index(SCATTER_SPLIT[0]), SCATTER_SPLIT[1])
    fits = {"shipped": setup.noise}
    for truncation in args.truncations:
        fits[f"truncated at {truncation:g}"] = scatter_from_draws(
            plain.noise,
            *(posteriors["validation"][k] for k in ("draws", "level", "reference", "error")),
            SCATTER_CLASSES,
            split,
            SCATTER_DOF,
            truncation,
        )
    results = {
        name: {
            "dof": noise.label_scatter_dof,
            "truncation": noise.label_scatter_truncation,
            **{s: scattered_coverage(noise, posteriors[s]) for s in posteriors},
        }
        for name, noise in fits.items()
    }
    for name, result in results.items():
        print_coverage(name, result, posteriors)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


def unscattered_posteriors(setup, split, work: Path) -> dict:
    """Unscattered importance draws of ``split``'s in-domain stars with the four APOGEE
    labels, with their flux noise levels and references (cached in ``work``, per model)."""
    path = work / f"{split}_{setup.model.weights_sha256[:12]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return dict(saved)
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    chosen = tokens.take(split_mask(tokens.source_id, split))
    stars, reference, error = scatter_stars(setup, chosen, limit=None)
    prepared = prepare_stars(setup, stars)
    draws = importance_posteriors(setup, prepared, jax.random.PRNGKey(SEED), progress=True)
    result = {
        "draws": draws.astype(np.float32),
        "level": setup.noise.flux_noise_level(prepared.data),
        "reference": reference[prepared.rows],
        "error": error[prepared.rows],
    }
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


def scattered_coverage(noise, posteriors) -> dict:
    """Coverage of the references by the scattered draws (their errors folded in,
    ``bayesfm.infer.calibration``), and the largest offset drawn."""
    draws, reference = posteriors["draws"], posteriors["reference"]
    scattered = noise.scatter_labels(
        draws, np.array([SEED, 1], np.uint32), posteriors["level"][:, None]
    )
    coverage = [
        central_coverage(pit_values(scattered[..., i], reference[:, i], posteriors["error"][:, i]))
        for i in range(len(COMPARED))
    ]
    misses = [(c["0.68"] - 0.68) ** 2 + (c["0.95"] - 0.95) ** 2 for c in coverage]
    largest = np.abs(scattered - draws).max(axis=(0, 1))
    return {
        "stars": int(len(draws)),
        "68": {name: round(c["0.68"], 4) for name, c in zip(COMPARED, coverage, strict=True)},
        "95": {name: round(c["0.95"], 4) for name, c in zip(COMPARED, coverage, strict=True)},
        "squared_misses": float(sum(misses)),
        "largest_offset": {name: float(largest[i]) for i, name in enumerate(COMPARED)},
    }


def print_coverage(name: str, result: dict, splits) -> None:
    """One fit's degrees of freedom and, per split, its coverage and largest offsets."""
    print(f"{name}: dof {result['dof']}")
    for s in splits:
        cover = result[s]
        print(
            f"  {s:<10} ({cover['stars']} stars) 68%: {coverage_row(cover['68'])}; "
            f"95%: {coverage_row(cover['95'])}; squared misses {cover['squared_misses']:.2e}; "
            f"largest offsets {coverage_row(cover['largest_offset'])}"
        )


def coverage_row(values: dict) -> str:
    return " / ".join(f"{v:.3g}" for v in values.values())


if __name__ == "__main__":
    main()
