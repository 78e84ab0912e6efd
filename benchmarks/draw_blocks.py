"""Importance draws per second against how target evaluations are batched, for a full round of
stars and for a refinement round of some of them.

Run:  python benchmarks/draw_blocks.py [--stars 64] [--round-stars 38] [--draws 500]
      [--repeats 3]

The first round of importance sampling (``bayesfm.infer.importance``) for the first N
test-split stars, and the same for the first ``--round-stars`` of them (a typical
refinement round: half the stars fail the first), weighed with each way in turn, interleaved
over the repeats so that a change of load hits them alike: (stars, draws per star) blocks
over stars padded to a power of two, and one star at a time through a one-star program (no
padding; the default on a CPU). Prints the median draws/s per way (only the requested
stars' draws count) and the largest difference in log weight from the first way's.
"""

import argparse
import time

import jax
import numpy as np

from bayesfm.common.devices import full_precision
from bayesfm.infer import importance
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import first_stars_of_split

# (stars, draws per star) per block, one by one: the first is the accelerator's batching, the
# second the CPU default until the stars went one by one; then one star at a time in blocks of
# 64 (the CPU default), 128, 256 and all 500 draws
WAYS = (
    ((8, 500), False),
    ((1, 64), False),
    ((1, 64), True),
    ((1, 128), True),
    ((1, 256), True),
    ((1, 500), True),
)


def _describe(way) -> str:
    (stars, draws), one_by_one = way
    how = "one by one" if one_by_one else "padded"
    return f"{stars} star(s) x {draws} draws, {how}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=64)
    parser.add_argument("--round-stars", type=int, default=38)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    setup = StarInference.default()
    stars = first_stars_of_split("test", args.stars, setup.model.vocabulary.binning)
    data, _, _, mean, sigma = prepare_stars(setup, stars)
    config = importance.ImportanceConfig()
    z_mean, z_sigma = setup.scaling.normalise(mean), sigma / setup.scaling.scale
    proposal = full_precision(laplace_proposal)(setup, data, z_mean, z_sigma, config).mixture
    key = jax.random.PRNGKey(0)
    print(f"{jax.devices()[0].platform}, {args.draws} draws per star")
    for n_rows in (len(mean), min(args.round_stars, len(mean))):
        rows = np.arange(n_rows)
        seconds, log_w = {way: [] for way in WAYS}, {}
        for _ in range(args.repeats + 1):  # the first pass compiles
            for way in WAYS:
                start = time.perf_counter()
                _, weights = importance.weigh_stars(
                    setup, data, rows, proposal, key, args.draws, config.df, *way
                )
                log_w[way] = np.asarray(weights)
                seconds[way].append(time.perf_counter() - start)
        print(f"{n_rows} stars:")
        for way in WAYS:
            rate = n_rows * args.draws / np.median(seconds[way][1:])
            change = np.nanmax(np.abs(log_w[way] - log_w[WAYS[0]]))
            print(f"  {_describe(way):<32} {rate:8.0f} draws/s, |d log w| <= {change:.1e}")


if __name__ == "__main__":
    main()
