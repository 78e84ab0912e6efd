"""Refinement rounds against the NUTS fallback, on the stars that needed the fallback.

Run:  python benchmarks/refinement_rounds.py [--catalogue runs/a_k_scale_stage11]
      [--rounds 2 5] [--repeats 2]

Takes the stars a finished catalogue run (default settings, ``method="auto"``) sent to the
NUTS fallback, prints how many of them NUTS passed and at what cost (leapfrog steps and
seconds, from the run's chunk accounts), then importance-samples the same stars with each
number of refinement rounds in turn (``ImportanceConfig.refinements``; the other settings
default), interleaved over the repeats after one pass that compiles: stars passing k-hat and
ESS, target evaluations per star, and the median seconds. Writes
benchmarks/refinement_rounds.json.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from bayesfm.catalogue.store import load_costs
from bayesfm.infer.importance import ImportanceConfig, run_importance
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import load_library

OUT = Path(__file__).with_suffix(".json")


def nuts_account(catalogue: Path, table: pd.DataFrame) -> dict:
    """What the NUTS fallback did for the stars it got, from the run's own records."""
    costs = load_costs(catalogue)
    nuts = table["path"] == "nuts"
    return {
        "stars": int(nuts.sum()),
        "passed": int((nuts & table["ok"]).sum()),
        "leapfrog_per_star": sum(c["evaluations"]["nuts_leapfrog"] for c in costs) / nuts.sum(),
        "seconds_per_star": sum(c["stages"].get("nuts fallback", 0.0) for c in costs) / nuts.sum(),
        "catalogue_seconds_per_star": sum(c["seconds"] for c in costs) / len(table),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=Path("runs/a_k_scale_stage11"))
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    table = pd.read_csv(args.catalogue / "catalogue.csv")
    account = nuts_account(args.catalogue, table)
    print(
        f"{args.catalogue}: {account['stars']} of {len(table)} stars went to NUTS, which passed "
        f"{account['passed']}; {account['leapfrog_per_star']:.0f} leapfrog steps and "
        f"{account['seconds_per_star']:.1f} s per NUTS star, "
        f"{account['catalogue_seconds_per_star'] * 1e3:.0f} ms per star over the whole run"
    )
    setup = StarInference.default()
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    row_of = {s: i for i, s in enumerate(tokens.source_id.tolist())}
    ids = table.loc[table["path"] == "nuts", "source_id"]
    prepared = prepare_stars(setup, tokens.take(np.array([row_of[s] for s in ids])))
    z_mean = setup.scaling.normalise(prepared.start)
    z_sigma = prepared.start_sigma / setup.scaling.scale
    configs = {r: dataclasses.replace(ImportanceConfig(), refinements=r) for r in args.rounds}
    seconds, results = {r: [] for r in args.rounds}, {}
    for _ in range(args.repeats + 1):  # the first pass compiles
        for rounds, config in configs.items():
            start = time.perf_counter()
            result = run_importance(
                setup, prepared.data, z_mean, z_sigma, jax.random.PRNGKey(3), config
            )
            seconds[rounds].append(time.perf_counter() - start)
            results[rounds] = {
                "passed": int(result.accepted.sum()),
                "evaluations_per_star": float(result.evaluations.mean()),
            }
    for rounds in args.rounds:
        results[rounds]["seconds_per_star"] = float(np.median(seconds[rounds][1:])) / len(ids)
        r = results[rounds]
        print(
            f"{rounds} refinement rounds: {r['passed']} of {len(ids)} pass, "
            f"{r['evaluations_per_star']:.0f} evaluations and {r['seconds_per_star']:.2f} s "
            "per star"
        )
    out = {"catalogue": str(args.catalogue), "nuts_fallback": account, "importance": results}
    OUT.write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
