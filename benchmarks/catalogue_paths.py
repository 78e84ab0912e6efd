"""Catalogue mode on test-split stars: its cost account, and its posteriors against NUTS.

Run:  python benchmarks/catalogue_paths.py [--n 1000] [--nuts-stars 200]
          [--nuts-reference runs/validation_session/check_nuts]

Four runs through ``run_catalogue`` with ``--workers`` chunks at once (default: as
``bayesfm catalogue``, one per CPU core), each resumable; stars/s is stars over wall time,
compilation included, added up over a run's resumed calls (``wall.json`` in its folder):
- "default": the catalogue's default settings (importance sampling, NUTS fallback), and
  with several workers the same one chunk at a time;
- "modes with the emulator": the same, the modes found with the emulator itself instead of
  the distilled proposal emulator (``bayesfm.model.proposal_emulator``);
- "previous": the sampling budget of earlier releases, every star through three rounds of
  1,000 draws (the mode from 20 Newton steps, converged), on the same stars;
- "nuts": batched NUTS on the first ``--nuts-stars``, or a finished NUTS catalogue of the
  same model given by ``--nuts-reference`` (checked against the setup's fingerprint).
``--compile-cache`` keeps the compiled programs on disk as ``bayesfm catalogue`` does; a
second run with the same folder (and another ``--out``) measures a warm cache.
Prints and writes (benchmarks/catalogue_paths.json): stars/s, the time split per stage
(worker seconds: with several workers they add up to more than the wall time) and
target-density evaluations per star (from the chunks' cost accounts), the
fraction on each path and passing its checks, accuracy of the medians against APOGEE, and
on stars accepted by both, the agreement with NUTS: median |difference of medians| / NUTS
sd and median width ratio per label.
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_costs
from bayesfm.common.compile_cache import CACHE_ENV, enable_compilation_cache
from bayesfm.common.devices import default_workers
from bayesfm.common.errors import DataError
from bayesfm.common.metrics import residual_stats, robust_sigma
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.setup import StarInference
from bayesfm.sources.library import first_stars_of_split
from bayesfm.tokens.labels import LABEL_INPUTS

PREVIOUS = ImportanceConfig(
    num_draws=1000,
    refine_draws=1000,
    refinements=2,
    min_rounds=3,
    mode_rounds=20,
    quasi_newton_steps=0,
    top_up_draws=0,
    logg_starts=(),
    pool_rounds="none",
    proposal_emulator=False,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="first N test-split stars")
    parser.add_argument(
        "--nuts-stars", type=int, default=200, help="NUTS on the first N (0: no comparison)"
    )
    parser.add_argument("--nuts-reference", type=Path, help="a finished NUTS catalogue of them")
    parser.add_argument("--chunk-size", type=int, default=CatalogueConfig().chunk_size)
    parser.add_argument("--workers", type=int, help="chunks at once (default: as the CLI)")
    parser.add_argument("--out", type=Path, default=Path("runs/catalogue_bench"))
    parser.add_argument("--json", default="benchmarks/catalogue_paths.json")
    parser.add_argument(
        "--compile-cache",
        type=Path,
        help="keep compiled programs in this folder, as the command line does (a second run "
        "with the same folder measures the warm cache)",
    )
    args = parser.parse_args()
    if args.compile_cache:
        os.environ[CACHE_ENV] = str(args.compile_cache)
        enable_compilation_cache()

    setup = StarInference.default()
    workers = args.workers or default_workers()
    start = time.perf_counter()
    stars = first_stars_of_split("test", args.n, setup.model.vocabulary.binning)
    reading = time.perf_counter() - start

    default = CatalogueConfig(chunk_size=args.chunk_size)
    emulator_modes = dataclasses.replace(
        default, importance=dataclasses.replace(default.importance, proposal_emulator=False)
    )
    previous = dataclasses.replace(default, importance=PREVIOUS)
    runs = [
        ("default", default, workers),
        ("modes with the emulator", emulator_modes, workers),
        ("previous", previous, workers),
    ]
    if workers > 1:  # after the default run, whose first chunks traced the programs it reuses
        runs.insert(1, ("default, one chunk at a time", default, 1))
    tables, figures = {}, {}
    for name, config, run_workers in runs:
        folder = args.out / name.replace(" ", "_").replace(",", "")
        tables[name] = _timed_run(stars, folder, config, setup, run_workers)
        figures[name] = _method_figures(tables[name], folder) | _cost_account(folder)
    nuts = _nuts_reference(setup, stars.take(np.arange(args.nuts_stars)), args)
    agreement = {}
    if nuts is not None:
        agreement = {name: _agreement(tables[name].iloc[: len(nuts)], nuts) for name in tables}
    results = {
        "n_stars": len(stars),
        "device": jax.devices()[0].platform,
        "chunk_size": args.chunk_size,
        "workers": workers,
        "compile_cache": None if args.compile_cache is None else str(args.compile_cache),
        "reading_seconds_per_star": reading / len(stars),
        "methods": figures,
        "nuts_reference": None if nuts is None else str(args.nuts_reference or args.out / "nuts"),
        "agreement_with_nuts": agreement,
        "accuracy_change_default_vs_previous": _accuracy_change(figures),
        "accuracy_change_bootstrap_90": _accuracy_change_interval(tables),
    }
    _print(results)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


def _timed_run(stars, folder: Path, config, setup, workers: int) -> pd.DataFrame:
    """``run_catalogue``, its wall time and the stars it fitted added to ``folder/wall.json``."""
    record = folder / "wall.json"
    wall = json.loads(record.read_text()) if record.exists() else {"stars": 0, "seconds": 0.0}
    before = _stars_written(folder)
    start = time.perf_counter()
    table = run_catalogue(stars, folder, config, setup, workers=workers)
    wall["seconds"] += time.perf_counter() - start
    wall["stars"] += len(table) - before
    record.write_text(json.dumps(wall))
    return table


def _stars_written(folder: Path) -> int:
    return sum(len(pd.read_csv(p)) for p in (folder / "chunks").glob("chunk_*[0-9].csv"))


def _nuts_reference(setup, stars, args) -> pd.DataFrame | None:
    """NUTS on ``stars``: a finished catalogue of the same setup, a new run, or (no stars,
    ``--nuts-stars 0``) None."""
    if args.nuts_reference is None and len(stars) == 0:
        return None
    if args.nuts_reference is None:
        return run_catalogue(stars, args.out / "nuts", CatalogueConfig(method="nuts"), setup)
    manifest = json.loads((args.nuts_reference / "run.json").read_text())
    table = pd.read_csv(args.nuts_reference / "catalogue.csv")
    if manifest["model_prior_noise_sha256"] != setup.fingerprint():
        raise DataError(f"{args.nuts_reference} was run with another model, prior or noise model")
    if manifest["config"]["method"] != "nuts" or not np.array_equal(
        table["source_id"].to_numpy()[: len(stars)], stars.source_id.astype(np.int64)
    ):
        raise DataError(f"{args.nuts_reference} is not a NUTS run of the first test stars")
    return table.iloc[: len(stars)]


def _cost_account(out_dir: Path) -> dict:
    """Worker seconds per star of each stage and density evaluations per star, over all
    chunks."""
    costs = load_costs(out_dir)
    n = sum(c["stars"] for c in costs)
    stages = {}
    for cost in costs:
        for stage, seconds in cost["stages"].items():
            stages[stage] = stages.get(stage, 0.0) + seconds / n
    total = sum(c["seconds"] for c in costs) / n
    stages["writing and bookkeeping"] = total - sum(stages.values())
    kinds = sorted({kind for cost in costs for kind in cost["evaluations"]})
    evaluations = {kind: sum(c["evaluations"].get(kind, 0) for c in costs) / n for kind in kinds}
    return {"worker_seconds_per_star": stages, "evaluations_per_star": evaluations}


def _accuracy_change(figures) -> dict:
    """Robust sigma of the medians vs APOGEE, default / previous - 1, per label."""
    new, old = (figures[m]["median_vs_apogee"] for m in ("default", "previous"))
    return {name: new[name]["robust_sigma"] / old[name]["robust_sigma"] - 1 for name in new}


def _accuracy_change_interval(tables, resamples=1000, seed=0) -> dict:
    """5-95% range of the robust-sigma change (default / previous - 1) over resamplings of
    the stars, both methods on the same resampled stars: how much of the change is the
    robust sigma's own noise."""
    rng = np.random.default_rng(seed)
    new, old = tables["default"], tables["previous"].set_index("source_id")
    old = old.loc[new["source_id"]]
    out = {}
    for name in LABEL_INPUTS:
        if f"{name}_ref" not in new:
            continue
        a = (new[f"{name}_median"] - new[f"{name}_ref"]).to_numpy()
        b = (old[f"{name}_median"] - old[f"{name}_ref"]).to_numpy()
        rows = np.flatnonzero(np.isfinite(a) & np.isfinite(b))
        picks = rng.choice(rows, (resamples, rows.size))
        ratios = [robust_sigma(a[p]) / robust_sigma(b[p]) - 1 for p in picks]
        out[name] = [float(q) for q in np.percentile(ratios, [5, 95])]
    return out


def _method_figures(table, folder: Path):
    wall = json.loads((folder / "wall.json").read_text())
    figures = {
        "stars_per_second": wall["stars"] / wall["seconds"],
        "path_fractions": (table["path"].value_counts() / len(table)).to_dict(),
        "pass_fraction": float(table["ok"].mean()),
        # stars outside the training domain get the amortized labels (path "amortized"), unchecked
        "pass_fraction_sampled": float(table.loc[table["path"] != "amortized", "ok"].mean()),
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
    print(
        f"\n{results['n_stars']} test-split stars on {results['device']}, "
        f"{results['workers']} chunks at once"
    )
    for method, r in results["methods"].items():
        paths = ", ".join(f"{p} {f:.0%}" for p, f in r["path_fractions"].items())
        print(
            f"  {method:<8} {r['stars_per_second']:.2f} stars/s; paths: {paths}; "
            f"pass checks {r['pass_fraction']:.1%} ({r['pass_fraction_sampled']:.1%} of those sampled)"
        )
        split = ", ".join(f"{k} {1e3 * v:.0f}" for k, v in r["worker_seconds_per_star"].items())
        print(f"           worker ms per star: {split}")
        drawn = ", ".join(f"{k} {v:.0f}" for k, v in r["evaluations_per_star"].items())
        print(f"           evaluations per star: {drawn}")
        for name, s in r["median_vs_apogee"].items():
            change = results["accuracy_change_default_vs_previous"][name]
            low, high = results["accuracy_change_bootstrap_90"][name]
            note = f" ({change:+.1%} vs previous, 5-95%: {low:+.1%} to {high:+.1%})"
            note = note if method == "default" else ""
            print(f"           {name:<8} robust sigma vs APOGEE {s['robust_sigma']:.4g}{note}")
    for method, agreement in results["agreement_with_nuts"].items():
        print(f"{method}: agreement with NUTS on {agreement['n_stars']} stars accepted by both:")
        for name in LABEL_INPUTS:
            a = agreement[name]
            print(
                f"  {name:<8} |median shift| {a['median_abs_shift_in_nuts_sd']:.3f} NUTS sd, "
                f"width ratio {a['median_width_ratio']:.3f}"
            )


if __name__ == "__main__":
    main()
