"""Posteriors by importance sampling from the transformer's amortized prediction.

The proposal is a Laplace approximation (as in Zhang, Green & Rix 2023): from the
transformer's amortized spectra -> labels prediction, and from a few fixed logg values,
a quasi-Newton method finds each star's posterior modes (``bayesfm.infer.mode``), and the
Hessian at each gives the covariance of a heavy-tailed multivariate Student-t component of a mixture
(``bayesfm.infer.mixture``; where the Hessian is not positive definite, the amortized sigma
is used instead). Draws are weighted by prior x emulator likelihood / proposal;
Pareto-smoothed importance sampling (Vehtari et al. 2024) gives the weights and their k-hat.
A star passes when k-hat <= ``max_khat`` (the weights' variance is then finite enough to
trust) and the effective sample size is large enough. Only the stars that fail get
refinement rounds, each component re-centred on the weighted moments of the previous draws
it is responsible for; with ``pool_rounds`` the rounds' draws are weighed together
(``bayesfm.infer.draw_pool``), so each round adds to the last instead of replacing it. A
star whose weights are sound (k-hat) but too few (ESS) after the last round gets
``top_up_draws`` more from that round's proposal, weighed together with the pool; those that
still fail are for NUTS.
"""

import functools
from typing import NamedTuple

import jax
import numpy as np
from numpyro.infer.util import log_density

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import bucket_size, full_precision, in_star_blocks
from bayesfm.common.stopwatch import Stopwatch
from bayesfm.common.stored_programs import stored_jit
from bayesfm.infer.draw_pool import DrawPool, resample
from bayesfm.infer.mixture import Mixture, refined_mixture, sample_mixture
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.settings import ImportanceConfig

__all__ = [
    "ImportanceConfig",
    "ImportanceResult",
    "run_importance",
    "weigh_stars",
    "weigh_one_star",
]

CPU_DRAWS_PER_BLOCK = 64  # target evaluations batched at once on a CPU (cache-sized)


class ImportanceResult(NamedTuple):
    """Per star: equal-weight draws z [n, num_keep, 5], k-hat [n], ESS [n], accepted [n],
    the centre [n, 5] and Cholesky factor [n, 5, 5] of the last proposal's heaviest
    component (which start and precondition NUTS for the stars that fail), the target
    densities evaluated [n], and the mode searches' evaluations by kind (all stars)."""

    z: np.ndarray
    khat: np.ndarray
    ess: np.ndarray
    accepted: np.ndarray
    loc: np.ndarray
    chol: np.ndarray
    evaluations: np.ndarray
    mode_evaluations: dict


@full_precision
def run_importance(
    setup, data: StarData, z_mean, z_sigma, key, config=ImportanceConfig(), watch=None
):
    """Importance-sample the posteriors of n stars.

    Args:
        setup: A ``StarInference``.
        data: The stars' ``StarData`` stacked along a leading axis of n.
        z_mean, z_sigma: Amortized prediction in normalised coordinates [n, 5].
        key: PRNG key.
        config: Proposal and acceptance settings.
        watch: A ``Stopwatch`` that receives the seconds of "mode", "draws" and "psis".
    """
    watch = watch or Stopwatch()
    n = len(z_mean)
    with watch("mode"):
        proposal, mode_evaluations = laplace_proposal(setup, data, z_mean, z_sigma, config)
    rng = np.random.default_rng(np.asarray(key))
    kept = np.full((n, config.num_keep, proposal.loc.shape[-1]), np.nan, np.float32)
    khat, ess, evaluations = np.full(n, np.inf), np.zeros(n), np.zeros(n, np.int64)
    todo, num_draws, pool = np.arange(n), config.num_draws, None
    for round_ in range(config.refinements + 1):
        key, round_key = jax.random.split(key)
        with watch("draws"):
            z, log_w = weigh_stars(setup, data, todo, proposal, round_key, num_draws, config.df)
        with watch("psis"):
            pool = _pooled(pool, round_, z, log_w, proposal.take(todo), config)
            weights, khat[todo] = pool.smoothed_weights()
            ess[todo] = 1.0 / np.sum(weights**2, axis=1)
            kept[todo] = resample(pool.z, weights, config.num_keep, rng)
        evaluations[todo] += num_draws
        failed = (khat[todo] > config.max_khat) | (ess[todo] < config.min_ess)
        failed |= round_ + 1 < config.min_rounds
        if round_ == config.refinements or not failed.any():
            break
        pool, weights, todo = pool.take(failed), weights[failed], todo[failed]
        refined = refined_mixture(
            pool.z, weights, proposal.take(todo), config.refine_inflation, config.df
        )
        proposal.put(todo, refined)
        num_draws = config.refine_draws
    short = (khat[todo] <= config.max_khat) & (ess[todo] < config.min_ess)
    if config.top_up_draws and short.any():
        rows = todo[short]
        with watch("draws"):
            more = _top_up(setup, data, rows, pool.take(short), proposal, key, config, rng)
        khat[rows], ess[rows], kept[rows] = more
        evaluations[rows] += _top_up_parts(config) * config.refine_draws
    accepted = (khat <= config.max_khat) & (ess >= config.min_ess)
    return ImportanceResult(
        kept, khat, ess, accepted, *proposal.main(), evaluations, mode_evaluations
    )


def _top_up(setup, data, rows, pool: DrawPool, proposal, key, config, rng):
    """(k-hat, ESS, kept draws) of stars ``rows`` from their pooled draws together with
    ``config.top_up_draws`` more from their last proposals, drawn in parts of
    ``refine_draws`` with the rounds' compiled program: three long runs stalled for good
    (0% CPU, every XLA thread waiting) inside a 4,000-draw program, now and then, never in
    the rounds' program over thousands of calls."""
    for part in range(_top_up_parts(config)):
        part_key = jax.random.fold_in(key, 1 + part)
        more = weigh_stars(setup, data, rows, proposal, part_key, config.refine_draws, config.df)
        pool = pool.extend(*more)
    weights, khat = pool.smoothed_weights()
    return khat, 1.0 / np.sum(weights**2, axis=1), resample(pool.z, weights, config.num_keep, rng)


def _pooled(pool, round_, z, log_w, proposal, config) -> DrawPool:
    """Round ``round_``'s draws of the stars in play, with the earlier rounds' that the
    config pools (``bayesfm.infer.draw_pool``)."""
    first_pooled = {"none": round_, "refinements": 1, "all": 0}[config.pool_rounds]
    if round_ <= first_pooled:
        return DrawPool.first(z, log_w, proposal, config.df)
    return pool.add(z, log_w, proposal)


def _top_up_parts(config) -> int:
    """Parts of ``refine_draws`` that make up at least ``top_up_draws``."""
    return -(-config.top_up_draws // config.refine_draws)


def weigh_stars(
    setup, data, rows, proposal: Mixture, key, num_draws, df, block=None, one_by_one=None
):
    """Draws and log weights of stars ``rows``; ``block``: (stars, draws per star) evaluated
    at once, by default ``evaluation_block``'s.

    With one star per block on a single device the stars go one by one through a one-star
    program (``one_by_one``, the default there): a refinement round of 38 stars costs 38
    stars. Otherwise they are padded to a power of two, so that few batch shapes are compiled
    however many stars a round has, and the padding is computed too."""
    stars_per_block, draws_per_block = block or evaluation_block(num_draws)
    if one_by_one is None:
        one_by_one = stars_per_block == 1 and jax.local_device_count() == 1
    subset = jax.tree_util.tree_map(lambda a: np.asarray(a)[rows], (tuple(proposal), data))
    keys = np.asarray(jax.random.split(key, len(rows)))  # numpy: no dispatch per star
    if one_by_one:
        weigh = _compiled_star_weigher(setup, num_draws, df, draws_per_block)
        results = [
            weigh(keys[i], *jax.tree_util.tree_map(lambda a, i=i: a[i], subset))
            for i in range(len(rows))
        ]
        return tuple(np.stack([np.asarray(r[j]) for r in results]) for j in (0, 1))
    weigh = _compiled_weigher(setup, num_draws, df, (stars_per_block, draws_per_block))
    return tuple(in_star_blocks(weigh, (keys, *subset), len(rows), bucket_size(len(rows))))


@functools.lru_cache(maxsize=8)
def _compiled_star_weigher(setup, num_draws, df, draws_per_block):
    """``weigh_one_star``, jitted for one star at a time."""
    one_star = weigh_one_star(setup, num_draws, df, draws_per_block)
    settings = (setup.program_key, num_draws, df, draws_per_block)
    return stored_jit(one_star, "star_weigher", *settings)


@functools.lru_cache(maxsize=8)
def _compiled_weigher(setup, num_draws, df, block):
    """``weigh_one_star`` over stars, jitted: ``(keys [n], mixtures, data) -> (z, log_w)``.

    The target is evaluated ``block`` = (stars, draws per star) at a time: on a CPU, one star's
    draws 64 at a time, since larger batches fall out of cache and run slower per draw
    (``benchmarks/emulator_speed.py``, docs/performance.md); on an accelerator, 8 stars'
    draws at once."""
    stars_per_block, draws_per_block = block
    one_star = weigh_one_star(setup, num_draws, df, draws_per_block)

    def all_stars(keys, mixtures, data):
        stars = (keys, mixtures, data)
        return jax.lax.map(lambda a: one_star(*a), stars, batch_size=stars_per_block)

    return stored_jit(all_stars, "weigher", setup.program_key, num_draws, df, block)


def evaluation_block(num_draws) -> tuple[int, int]:
    """(stars, draws per star) whose target densities are evaluated in one batch."""
    if jax.default_backend() == "cpu":
        return 1, min(num_draws, CPU_DRAWS_PER_BLOCK)
    return 8, num_draws


def weigh_one_star(setup, num_draws, df, draws_per_block=None):
    """The pure one-star ``(key, mixture (log weights [K], centres [K, 5], Cholesky factors
    [K, 5, 5]), data) -> (z [num_draws, 5], log weights)`` with a Student-t mixture proposal;
    the target is evaluated ``draws_per_block`` draws at a time (all at once by default)."""
    model = setup.star_model

    def one_star(key, mixture, data):
        z, log_q = sample_mixture(key, mixture, df, num_draws)
        log_target = jax.lax.map(
            lambda zi: log_density(model, (data,), {}, {"z": zi})[0],
            z,
            batch_size=draws_per_block or num_draws,
        )
        return z, log_target - log_q

    return one_star
