"""Warm-up length of the single-star NUTS preset, on the shipped example stars.

Run:  python benchmarks/one_star_warmup.py [--warmup 400 1000] [--seeds 0] [--out FILE]

Each example star is sampled as ``bayesfm fit`` samples it (``NutsRunner``: blocks of
``ONE_STAR_NUTS.num_samples`` draws per chain until R-hat <= 1.01, bulk ESS >= 400 and no
divergences, at most ``DEFAULT_BLOCKS``), once per warm-up length and seed, the warm-up lengths
interleaved star by star after one star that compiles each. Prints and writes
(benchmarks/one_star_warmup.json) per warm-up length: stars converged, draws per chain, and
the median and total seconds of sampling.
"""

import numpyro

numpyro.set_host_device_count(2)  # as the command line: two CPU cores -> two parallel chains

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bayesfm.infer.diagnostics import summarise  # noqa: E402
from bayesfm.infer.nuts import NutsRunner  # noqa: E402
from bayesfm.infer.settings import ONE_STAR_NUTS  # noqa: E402
from bayesfm.infer.setup import StarInference  # noqa: E402
from bayesfm.sources.examples import load_example_stars  # noqa: E402

OUT = Path(__file__).with_suffix(".json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, nargs="+", default=[400, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    setup = StarInference.default()
    stars = load_example_stars(setup.model.vocabulary.binning).tokens
    runners = {
        w: NutsRunner(setup, dataclasses.replace(ONE_STAR_NUTS, num_warmup=w)) for w in args.warmup
    }
    for runner in runners.values():  # compiles
        runner.run(stars, 0, jax.random.PRNGKey(99))
    runs = {w: [] for w in args.warmup}
    for row in range(len(stars)):
        for seed in args.seeds:
            for warmup, runner in runners.items():
                idata = runner.run(stars, row, jax.random.PRNGKey(seed + row))
                flags = summarise(idata)[1]
                runs[warmup].append(
                    {
                        "source_id": int(stars.source_id[row]),
                        "seed": seed,
                        "converged": bool(flags["converged"]),
                        "max_rhat": flags["max_rhat"],
                        "draws_per_chain": int(idata.posterior.sizes["draw"]),
                        "seconds": float(idata.posterior.attrs["sampling_seconds"]),
                    }
                )
                r = runs[warmup][-1]
                print(
                    f"star {row} seed {seed} warm-up {warmup}: converged {r['converged']} "
                    f"(R-hat {r['max_rhat']:.3f}) after {r['draws_per_chain']} draws, "
                    f"{r['seconds']:.1f} s",
                    flush=True,
                )
    summary = {
        w: {
            "converged": sum(r["converged"] for r in rs),
            "fits": len(rs),
            "mean_draws_per_chain": float(np.mean([r["draws_per_chain"] for r in rs])),
            "median_seconds": float(np.median([r["seconds"] for r in rs])),
            "total_seconds": float(np.sum([r["seconds"] for r in rs])),
        }
        for w, rs in runs.items()
    }
    for w, s in summary.items():
        print(
            f"warm-up {w}: {s['converged']} of {s['fits']} converged, "
            f"{s['mean_draws_per_chain']:.0f} draws per chain on average, "
            f"median {s['median_seconds']:.1f} s, total {s['total_seconds']:.0f} s"
        )
    args.out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
