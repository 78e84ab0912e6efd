"""Importance sampling's settings side by side: cost, checks passed, accuracy.

Run:  python benchmarks/importance_settings.py --variants mode [--n 256]
          [--out runs/importance_settings] [--json benchmarks/importance_settings_mode.json]

The catalogue's importance path alone (no NUTS fallback), on the first N test-split stars,
once per variant of the catalogue's default ``ImportanceConfig``, in one run. Variant sets:
- "mode": the mode search, Newton's method (an exact Hessian every step, the previous
  default) against quasi-Newton rounds (an exact Hessian per round, BFGS updates between);
- "draws": the draw budget, the default against smaller first rounds and refinements;
- "mode_budget": the default quasi-Newton search (2 rounds of 20 steps from each of three
  starts) against shorter ones and against the amortized start alone;
- "starts": the three mode searches (amortized, logg 2.5 and 4.5) against two, the
  amortized and whichever logg start lies farther from it;
- "scouting": mode searches from the amortized and farthest logg starts alone, and with
  two more from scouted points (``ImportanceConfig.scout_draws``);
- "pooling": the refinement rounds of 1,000 draws each, weighed alone (the default),
  against rounds weighed together (``pool_rounds``: all rounds, or the
  refinement rounds without the first) with smaller rounds.
Prints and writes: seconds per star in the mode search and in the draws, and over the
chunks after each variant's first ("steady": a variant that reuses an earlier one's compiled
programs saves their compilation in its first chunk only), evaluations per star, the fraction
of stars passing k-hat and ESS (of all, and of those sampled), median k-hat, and the robust
sigma of the medians against APOGEE. Each variant's run resumes from its directory.
"""

import argparse
import dataclasses
import json
from pathlib import Path

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_costs
from bayesfm.common.metrics import residual_stats
from bayesfm.infer.setup import StarInference
from bayesfm.sources.library import first_stars_of_split
from bayesfm.tokens.labels import LABEL_INPUTS

VARIANTS = {  # set -> {name: changes to the default ImportanceConfig at the time of the run}
    "mode": {
        "newton 30": {"mode_rounds": 30, "quasi_newton_steps": 0},
        "quasi-newton 3 x 20": {"mode_rounds": 3, "quasi_newton_steps": 19},
        "quasi-newton 2 x 20": {"mode_rounds": 2, "quasi_newton_steps": 19},
    },
    "draws": {
        "default": {},
        "300 + 600s": {"num_draws": 300, "refine_draws": 600, "top_up_draws": 2400},
        "200 + 400s": {"num_draws": 200, "refine_draws": 400, "top_up_draws": 1600},
    },
    "mode_budget": {
        "2 x 20": {},
        "2 x 10": {"quasi_newton_steps": 9},
        "1 x 20": {"mode_rounds": 1},
        "2 x 20, amortized start only": {"logg_starts": ()},
    },
    "starts": {
        "three starts": {"farthest_logg_start_only": False},
        "amortized and farthest logg start (default)": {},
    },
    "scouting": {
        "no scouting": {"scout_draws": 0},
        "128 scouted points, x3, two starts": {"scout_draws": 128, "scout_inflation": 3.0},
        "256 scouted points, x3, two starts": {"scout_draws": 256, "scout_inflation": 3.0},
    },
    "pooling": {
        "unpooled, 1000s (default)": {},
        "pooled rounds": {"pool_rounds": "all"},
        "pooled, 500s": {"pool_rounds": "all", "refine_draws": 500, "top_up_draws": 2000},
        "pooled, 250s": {"pool_rounds": "all", "refine_draws": 250, "top_up_draws": 1000},
        "pooled refinements, 500s": {
            "pool_rounds": "refinements",
            "refine_draws": 500,
            "top_up_draws": 2000,
        },
        "pooled refinements, 250s": {
            "pool_rounds": "refinements",
            "refine_draws": 250,
            "top_up_draws": 1000,
        },
    },
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--n", type=int, default=256, help="first N test-split stars")
    parser.add_argument("--out", type=Path, default=Path("runs/importance_settings"))
    parser.add_argument("--json", help="default: benchmarks/importance_settings_<variants>.json")
    args = parser.parse_args()

    setup = StarInference.default()
    stars = first_stars_of_split("test", args.n, setup.model.vocabulary.binning)
    base = CatalogueConfig(method="importance")
    results = {}
    for name, changes in VARIANTS[args.variants].items():
        config = dataclasses.replace(
            base, importance=dataclasses.replace(base.importance, **changes)
        )
        out = args.out / args.variants / name.replace(" ", "_")
        table = run_catalogue(stars, out, config, setup)
        results[name] = _figures(table, load_costs(out))
        print(name, json.dumps(results[name]), flush=True)
    path = Path(args.json or f"benchmarks/importance_settings_{args.variants}.json")
    path.write_text(json.dumps({"n_stars": len(stars), "variants": results}, indent=1))
    print(f"wrote {path}")


def _figures(table, costs) -> dict:
    n = sum(c["stars"] for c in costs)
    per_star = {
        stage: sum(c["stages"].get(stage, 0.0) for c in costs) / n for stage in ("mode", "draws")
    }
    evaluations = costs[0]["evaluations"]
    steady = sum(c["seconds"] for c in costs[1:]) / max(sum(c["stars"] for c in costs[1:]), 1)
    sampled = table["path"] == "importance"
    return {
        "seconds_per_star": per_star
        | {"total": sum(c["seconds"] for c in costs) / n, "steady_total": steady},
        "evaluations_per_star": {
            k: sum(c["evaluations"][k] for c in costs) / n for k in evaluations
        },
        "pass_fraction": float(table["ok"].mean()),
        "pass_fraction_sampled": float(table["ok"][sampled].mean()),
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
