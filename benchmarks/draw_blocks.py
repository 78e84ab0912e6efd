"""Importance draws per second against how many target evaluations are batched at once.

Run:  python benchmarks/draw_blocks.py [--stars 64] [--draws 500] [--repeats 3]

The first round of importance sampling (``bayesfm.infer.importance``) for the first N
test-split stars, weighed with each (stars, draws per star) block in turn, the blocks
interleaved over the repeats so that a change of load hits them alike. Prints the median
draws/s per block and the largest difference in log weight from the first block's.
"""

import argparse
import time

import jax
import numpy as np

from bayesfm.common.devices import full_precision
from bayesfm.infer import importance
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask

BLOCKS = ((8, 500), (1, 256), (1, 128), (1, 64))  # the first: before; (1, 64): default on CPU


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=64)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    setup = StarInference.default()
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    stars = tokens.take(np.flatnonzero(split_mask(tokens.source_id, "test"))[: args.stars])
    data, _, _, mean, sigma = prepare_stars(setup, stars)
    config = importance.ImportanceConfig()
    z_mean, z_sigma = setup.scaling.normalise(mean), sigma / setup.scaling.scale
    proposal = full_precision(laplace_proposal)(setup, data, z_mean, z_sigma, config)
    rows, key = np.arange(len(mean)), jax.random.PRNGKey(0)
    seconds, log_w = {b: [] for b in BLOCKS}, {}
    for _ in range(args.repeats + 1):  # the first pass compiles
        for block in BLOCKS:
            start = time.perf_counter()
            _, weights = importance.weigh_stars(
                setup, data, rows, proposal, key, args.draws, config.df, block
            )
            log_w[block] = np.asarray(weights)
            seconds[block].append(time.perf_counter() - start)
    print(f"{len(rows)} stars x {args.draws} draws on {jax.devices()[0].platform}")
    for block in BLOCKS:
        rate = len(rows) * args.draws / np.median(seconds[block][1:])
        change = np.nanmax(np.abs(log_w[block] - log_w[BLOCKS[0]]))
        print(
            f"  {block[0]} star(s) x {block[1]} draws: {rate:8.0f} draws/s, |d log w| <= {change:.1e}"
        )


if __name__ == "__main__":
    main()
