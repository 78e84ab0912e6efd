"""NUTS on every shipped example star: convergence, agreement with APOGEE, and cost; SVI side by side.

Run:  python benchmarks/nuts_examples.py [--warmup 400] [--samples 600] [--max-samples 3000]
                                         [--out benchmarks/nuts_examples.json]

For each star: R-hat, bulk ESS, divergences, the verdict (R-hat <= 1.01, bulk ESS >= 400,
no divergences; chains go on in blocks of --samples until it holds or --max-samples),
and whether each APOGEE label lies inside the posterior's central 68% and
95% intervals widened by the APOGEE error. Timing, all in this one run: NUTS compile
(the first star's wall time minus a compiled rerun of it), sampling wall time, ESS per second, and SVI (AutoNormal,
AutoMultivariateNormal, AutoIAFNormal; 2000 steps) on the same stars.
"""

import numpyro

numpyro.set_host_device_count(2)  # two CPU cores -> two parallel chains

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bayesfm.infer.diagnostics import summarise  # noqa: E402
from bayesfm.infer.nuts import NutsRunner  # noqa: E402
from bayesfm.infer.settings import ONE_STAR_NUTS, SviConfig  # noqa: E402
from bayesfm.infer.setup import StarInference  # noqa: E402
from bayesfm.infer.svi import run_svi  # noqa: E402
from bayesfm.sources.examples import load_example_stars  # noqa: E402
from bayesfm.tokens.labels import LABEL_INPUTS  # noqa: E402
from bayesfm.tokens.labels import LABELS as SPECTROSCOPIC  # noqa: E402

LABELS = tuple(SPECTROSCOPIC)


def agreement(idata, stars, row, level):
    """Per label: APOGEE value inside the central ``level`` interval widened by its error."""
    out = {}
    for name in LABELS:
        draws = idata.posterior[name].values.ravel()
        truth, error = stars.column(name)
        lo, hi = np.percentile(draws, [50 - level / 2, 50 + level / 2])
        half = np.hypot((hi - lo) / 2, error[row] * {68: 1.0, 95: 1.96}[level])
        out[name] = bool(abs(truth[row] - np.median(draws)) <= half)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--samples", type=int, default=600, help="draws per chain and block")
    parser.add_argument("--max-samples", type=int, default=3000, help="draws per chain at most")
    parser.add_argument("--svi-steps", type=int, default=2000)
    parser.add_argument("--out", default="benchmarks/nuts_examples.json")
    args = parser.parse_args()

    setup = StarInference.default()
    stars = load_example_stars(setup.model.vocabulary.binning).tokens
    config = replace(ONE_STAR_NUTS, num_warmup=args.warmup, num_samples=args.samples)
    runner = NutsRunner(setup, config, max_samples=args.max_samples)
    rows = []
    for row in range(len(stars)):
        start = time.perf_counter()
        idata = runner.run(stars, row, jax.random.PRNGKey(row))
        wall = time.perf_counter() - start
        table, flags = summarise(idata)
        sampling = idata.posterior.attrs["sampling_seconds"]
        rows.append(
            {
                "source_id": int(stars.source_id[row]),
                "wall_seconds": wall,
                "sampling_seconds": sampling,
                "draws_per_chain": int(idata.posterior.sizes["draw"]),
                "ess_per_second": flags["min_ess_bulk"] / sampling,
                **flags,
                "within_68": agreement(idata, stars, row, 68),
                "within_95": agreement(idata, stars, row, 95),
                "median": {n: float(table.loc[n, "q50"]) for n in LABEL_INPUTS},
                "apogee": {n: float(stars.column(n)[0][row]) for n in LABELS},
            }
        )
        r = rows[-1]
        print(
            f"{r['source_id']}: converged={r['converged']} R-hat={r['max_rhat']:.3f} ESS={r['min_ess_bulk']:.0f} "
            f"div={r['divergences']} draws/chain {r['draws_per_chain']} sampling {sampling:.1f} s; inside 68%: {sum(r['within_68'].values())}/4, "
            f"95%: {sum(r['within_95'].values())}/4",
            flush=True,
        )

    svi = {}
    for guide in ("normal", "mvn", "iaf"):
        times = []
        for row in range(min(3, len(stars))):
            start = time.perf_counter()
            config = SviConfig(guide=guide, num_steps=args.svi_steps)
            run_svi(setup, stars, row, jax.random.PRNGKey(row), config)
            times.append(time.perf_counter() - start)
        svi[guide] = {"first_seconds": times[0], "median_seconds": float(np.median(times[1:]))}

    # compile time: the first star again, now compiled, with the same key (the same draws)
    start = time.perf_counter()
    runner.run(stars, 0, jax.random.PRNGKey(0))
    compile_seconds = rows[0]["wall_seconds"] - (time.perf_counter() - start)
    summary = {
        "n_stars": len(rows),
        "n_converged": sum(r["converged"] for r in rows),
        "n_all_labels_within_68": sum(all(r["within_68"].values()) for r in rows),
        "n_all_labels_within_95": sum(all(r["within_95"].values()) for r in rows),
        "labels_within_68": sum(sum(r["within_68"].values()) for r in rows),
        "labels_within_95": sum(sum(r["within_95"].values()) for r in rows),
        "nuts_compile_seconds": compile_seconds,
        "nuts_median_sampling_seconds": float(np.median([r["sampling_seconds"] for r in rows])),
        "nuts_median_wall_seconds": float(np.median([r["wall_seconds"] for r in rows[1:]])),
        "nuts_median_draws_per_chain": float(np.median([r["draws_per_chain"] for r in rows])),
        "nuts_median_ess_per_second": float(np.median([r["ess_per_second"] for r in rows])),
        "svi": svi,
        "settings": {
            "warmup": args.warmup,
            "samples_per_chain_and_block": args.samples,
            "max_samples_per_chain": args.max_samples,
            "chains": 2,
            "svi_steps": args.svi_steps,
            "device": jax.devices()[0].device_kind,
        },
    }
    print(json.dumps(summary, indent=1))
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "stars": rows}, f, indent=1)


if __name__ == "__main__":
    main()
