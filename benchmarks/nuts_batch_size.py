"""Wall time per star of batched NUTS against the number of stars sampled in lockstep.

Run:  python benchmarks/nuts_batch_size.py [--stars 64] [--batches 2 8 64]
          [--warmup 100] [--samples 100]

Under ``vmap`` every NUTS step lasts as long as the longest trajectory in the batch, so a
big batch amortises the emulator better but waits more. For each batch size the same
held-out test stars are sampled from the same Laplace starting points (compilation is
excluded), and the seconds per star and the median of each star's smallest bulk ESS
are printed, side by side in one run (seconds per star: the wall time over the stars).
"""

import argparse
import time

import jax
import numpy as np

from bayesfm.infer.batched_nuts import chain_diagnostics, run_batched_nuts
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.settings import NutsConfig
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=64)
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8, 64])
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()

    setup = StarInference.default()
    library = load_library(binning=setup.model.vocabulary.binning)
    rows = np.flatnonzero(split_mask(library.tokens.source_id, "test"))[: args.stars]
    data, usable, _, mean, sigma = prepare_stars(setup, library.tokens.take(rows))
    loc, chol = laplace_proposal(
        setup, data, setup.scaling.normalise(mean), sigma / setup.scaling.scale, ImportanceConfig()
    ).mixture.main()
    config = NutsConfig(num_warmup=args.warmup, num_samples=args.samples)
    print(f"{len(usable)} test stars, {args.warmup} warm-up + {args.samples} draws x 2 chains")

    for size in args.batches:
        first = jax.tree_util.tree_map(lambda a, k=size: a[:k], (data, loc, chol))
        run_batched_nuts(setup, *first, jax.random.PRNGKey(1), config, lockstep_stars=size)
        start = time.perf_counter()  # compiled above: this times sampling only
        draws = run_batched_nuts(
            setup, data, loc, chol, jax.random.PRNGKey(0), config, lockstep_stars=size
        )
        ess = chain_diagnostics(draws)["min_ess_bulk"]
        seconds = (time.perf_counter() - start) / len(usable)
        print(
            f"{size:3d} stars per batch: {seconds:6.2f} s per star, "
            f"median min bulk ESS {np.median(ess):.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
