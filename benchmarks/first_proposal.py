"""Can the proposal emulator shape the first importance round's proposal? Pass rates side by side.

Run:  python benchmarks/first_proposal.py [--stars 128] [--mlp-draws 1000]

On the first N test stars inside the emulator's domain, the catalogue's default Laplace
mixture proposal (``bayesfm.infer.mode.laplace_proposal``), then the first round's 500 draws
weighed with the emulator from each of:
- the Laplace proposal itself (the default);
- the proposal re-fitted (one weighted-EM step, as a refinement round does) to draws weighed
  by the proposal emulator (``bayesfm.model.proposal_emulator``) instead of the emulator;
- that re-fit's covariances kept at the Laplace modes;
- for scale, a refinement round proper: the re-fit to 500 draws weighed by the emulator,
  then 1,000 draws.
Prints each one's share of stars passing k-hat <= 0.7 and ESS >= 100, median k-hat and
ESS, and seconds.
"""

import argparse
import time

import jax
import numpy as np

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.devices import full_precision
from bayesfm.infer import importance
from bayesfm.infer.draw_pool import DrawPool
from bayesfm.infer.mixture import Mixture, refined_mixture
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.infer.trust import amortized_inside
from bayesfm.sources.library import first_stars_of_split


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=128)
    parser.add_argument("--mlp-draws", type=int, default=1000)
    args = parser.parse_args()
    setup = StarInference.default()
    stars = first_stars_of_split("test", args.stars, setup.model.vocabulary.binning)
    data, _, _, mean, sigma = prepare_stars(setup, stars)
    inside = amortized_inside(setup, mean, CatalogueConfig().trust)
    data = jax.tree_util.tree_map(lambda a: a[inside], data)
    config = importance.ImportanceConfig()
    z_mean = setup.scaling.normalise(mean[inside])
    z_sigma = sigma[inside] / setup.scaling.scale
    proposal = full_precision(laplace_proposal)(setup, data, z_mean, z_sigma, config).mixture
    rows = np.arange(len(z_mean))
    print(f"{len(rows)} of {len(inside)} stars inside the domain")

    def weighed(weigher_setup, mixture, draws, seed):
        start = time.perf_counter()
        key = jax.random.PRNGKey(seed)
        z, log_w = importance.weigh_stars(weigher_setup, data, rows, mixture, key, draws, config.df)
        weights, khat = DrawPool.first(z, log_w, mixture, config.df).smoothed_weights()
        return z, weights, khat, time.perf_counter() - start

    def first_round(mixture, name, draws=config.num_draws):
        _, weights, khat, seconds = weighed(setup, mixture, draws, 0)
        ess = 1.0 / np.sum(weights**2, axis=1)
        passed = (khat <= config.max_khat) & (ess >= config.min_ess)
        print(
            f"{name:<52} pass {passed.mean():.3f}  k-hat {np.median(khat):.2f}  "
            f"ESS {np.median(ess):4.0f}  {seconds:5.1f} s"
        )

    def refit(weigher_setup, draws):
        z, weights, _, seconds = weighed(weigher_setup, proposal, draws, 1)
        print(f"  ({draws} draws weighed in {seconds:.1f} s)")
        return refined_mixture(z, weights, proposal, config.refine_inflation, config.df)

    first_round(proposal, "Laplace (default)")
    by_mlp = refit(setup.proposal_setup, args.mlp_draws)
    first_round(by_mlp, f"re-fitted to {args.mlp_draws} proposal-emulator draws")
    first_round(
        Mixture(by_mlp.log_weight, proposal.loc, by_mlp.chol),
        "  its covariances at the Laplace modes",
    )
    first_round(
        refit(setup, config.num_draws), "re-fitted to 500 emulator draws (refinement)", 1000
    )


if __name__ == "__main__":
    main()
