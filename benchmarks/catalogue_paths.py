"""Catalogue mode on test-split stars: batched NUTS vs importance sampling with NUTS fallback.

Run:  python benchmarks/catalogue_paths.py [--n 200] [--out runs/catalogue_bench]

Both runs go through ``run_catalogue`` (so they resume if interrupted); each star's row
carries its chunk's wall time, compilation included, so stars/s survives a resume.
Prints and writes (benchmarks/catalogue_paths.json): stars/s per method and their ratio,
the fraction of stars on each path, how many pass their checks, and, on stars where
importance sampling was accepted and NUTS converged, the agreement of the two: median
|difference of medians| / NUTS sd and the median width ratio per label.
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.common.metrics import residual_stats
from bayesfm.infer.setup import StarInference
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="first N test-split stars")
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--out", default="runs/catalogue_bench")
    parser.add_argument("--json", default="benchmarks/catalogue_paths.json")
    args = parser.parse_args()

    setup = StarInference.default()
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    test = np.flatnonzero(split_mask(tokens.source_id, "test"))[: args.n]
    stars = tokens.take(test)

    tables = {}
    for method in ("auto", "nuts"):
        config = CatalogueConfig(method=method, chunk_size=args.chunk_size, seed=0)
        tables[method] = run_catalogue(stars, Path(args.out) / method, config, setup)

    results = {
        "n_stars": len(stars),
        "device": jax.devices()[0].platform,
        "chunk_size": args.chunk_size,
        "methods": {m: _method_figures(t) for m, t in tables.items()},
        "agreement": _agreement(tables["auto"], tables["nuts"]),
    }
    speed = {m: r["stars_per_second"] for m, r in results["methods"].items()}
    results["speedup_auto_over_nuts"] = speed["auto"] / speed["nuts"]
    _print(results)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


def _method_figures(table):
    figures = {
        "stars_per_second": len(table) / table["seconds"].sum(),
        "path_fractions": (table["path"].value_counts() / len(table)).to_dict(),
        "pass_fraction": float(table["ok"].mean()),
    }
    accuracy = {}
    for name in LABEL_INPUTS:
        if f"{name}_ref" in table:
            stats = residual_stats(table[f"{name}_median"], table[f"{name}_ref"])
            accuracy[name] = {k: float(v) for k, v in stats.items()}
    figures["median_vs_apogee"] = accuracy
    return figures


def _agreement(auto, nuts):
    both = (auto["path"] == "importance") & auto["ok"] & nuts["ok"]
    out = {"n_stars": int(both.sum())}
    for name in LABEL_INPUTS:
        a, b = auto.loc[both], nuts.loc[both]
        shift = np.abs(a[f"{name}_median"] - b[f"{name}_median"]) / b[f"{name}_sd"]
        width = a[f"{name}_sd"] / b[f"{name}_sd"]
        out[name] = {
            "median_abs_shift_in_nuts_sd": float(np.median(shift)),
            "median_width_ratio": float(np.median(width)),
        }
    return out


def _print(results):
    print(f"\n{results['n_stars']} test-split stars on {results['device']}")
    for method, r in results["methods"].items():
        paths = ", ".join(f"{p} {f:.0%}" for p, f in r["path_fractions"].items())
        print(
            f"  {method:<5} {r['stars_per_second']:.3f} stars/s; paths: {paths}; "
            f"pass checks {r['pass_fraction']:.0%}"
        )
        for name, s in r["median_vs_apogee"].items():
            print(f"        {name:<8} robust sigma vs APOGEE {s['robust_sigma']:.4g}")
    print(f"  importance+fallback / NUTS speed: {results['speedup_auto_over_nuts']:.1f}x")
    agreement = results["agreement"]
    print(f"agreement on {agreement['n_stars']} stars both accepted:")
    for name in LABEL_INPUTS:
        a = agreement[name]
        print(
            f"  {name:<8} |median shift| {a['median_abs_shift_in_nuts_sd']:.2f} NUTS sd, "
            f"width ratio {a['median_width_ratio']:.2f}"
        )


if __name__ == "__main__":
    main()
