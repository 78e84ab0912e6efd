"""The mode search's settings against the importance sampling built on them.

Run:  python benchmarks/mode_search.py [--n 256] [--out runs/mode_search]

The catalogue's importance path alone (no NUTS fallback), on the first N test-split stars,
once per mode search: Newton's method (an exact Hessian every step, the previous default)
and quasi-Newton rounds (an exact Hessian per round, BFGS updates between). Everything else
is the catalogue's default. Prints and writes (benchmarks/mode_search.json): seconds per
star in the mode search and in the draws, gradients and Hessians per star, the fraction of
stars passing k-hat and ESS, median k-hat, and the robust sigma of the medians against
APOGEE. Each run resumes from its directory.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_costs
from bayesfm.common.metrics import residual_stats
from bayesfm.infer.setup import StarInference
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

SEARCHES = {  # name -> (rounds, BFGS steps per round)
    "newton 30": (30, 0),
    "quasi-newton 3 x 20": (3, 19),
    "quasi-newton 2 x 20": (2, 19),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="first N test-split stars")
    parser.add_argument("--out", type=Path, default=Path("runs/mode_search"))
    parser.add_argument("--json", default="benchmarks/mode_search.json")
    args = parser.parse_args()

    setup = StarInference.default()
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    stars = tokens.take(np.flatnonzero(split_mask(tokens.source_id, "test"))[: args.n])
    base = CatalogueConfig(method="importance")
    results = {}
    for name, (rounds, steps) in SEARCHES.items():
        search = {"mode_rounds": rounds, "quasi_newton_steps": steps}
        config = dataclasses.replace(
            base, importance=dataclasses.replace(base.importance, **search)
        )
        out = args.out / name.replace(" ", "_")
        table = run_catalogue(stars, out, config, setup)
        results[name] = _figures(table, load_costs(out))
        print(name, json.dumps(results[name]), flush=True)
    Path(args.json).write_text(json.dumps({"n_stars": len(stars), "searches": results}, indent=1))
    print(f"wrote {args.json}")


def _figures(table, costs) -> dict:
    n = sum(c["stars"] for c in costs)
    per_star = {
        stage: sum(c["stages"].get(stage, 0.0) for c in costs) / n for stage in ("mode", "draws")
    }
    evaluations = costs[0]["evaluations"]
    return {
        "seconds_per_star": per_star | {"total": sum(c["seconds"] for c in costs) / n},
        "per_star": {k: sum(c["evaluations"][k] for c in costs) / n for k in evaluations},
        "pass_fraction": float(table["ok"].mean()),
        "median_khat": float(table["khat"].median()),
        "robust_sigma_vs_apogee": {
            name: float(
                residual_stats(table[f"{name}_median"], table[f"{name}_ref"])["robust_sigma"]
            )
            for name in LABEL_INPUTS
        },
    }


if __name__ == "__main__":
    main()
