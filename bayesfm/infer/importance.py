"""Posteriors by importance sampling from the transformer's amortized prediction.

The proposal is a Laplace approximation (as in Zhang, Green & Rix 2023): from the
transformer's amortized spectra -> labels prediction, a batched optimiser finds each
star's posterior mode, and the Hessian there gives the covariance of a heavy-tailed
multivariate Student-t (where the Hessian is not positive definite, the amortized sigma
is used instead). The proposal is then refined by the weighted moments of its own draws.
Draws are weighted by prior x emulator likelihood / proposal; Pareto-smoothed importance
sampling (Vehtari et al. 2024) gives the weights and their k-hat. A star passes when k-hat
<= ``max_khat`` (the weights' variance is then finite enough to trust) and the effective
sample size is large enough; the rest are for NUTS.
"""

import functools
from dataclasses import dataclass
from typing import NamedTuple

import arviz as az
import jax
import numpy as np
import numpyro.distributions as dist
import optax
from numpyro.infer.util import log_density

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision, shard_stars

__all__ = [
    "ImportanceConfig",
    "ImportanceResult",
    "run_importance",
    "laplace_proposal",
    "mode_one_star",
    "weigh_one_star",
]


@dataclass(frozen=True)
class ImportanceConfig:
    """Proposal and acceptance settings."""

    num_draws: int = 1000  # per round and star
    mode_steps: int = 200  # Adam steps from the amortized prediction to the posterior mode
    mode_learning_rate: float = 0.02
    refinements: int = 2  # rounds re-centred on the previous round's weighted moments
    df: float = 5.0  # Student-t degrees of freedom: heavy tails guard against a too-narrow proposal
    inflation: float = 1.2  # first proposal's scale / the Laplace (or amortized) sigma
    refine_inflation: float = 1.3  # later proposals' scale / the weighted standard deviation
    max_khat: float = 0.7
    min_ess: float = 100.0
    num_keep: int = 1000  # equal-weight draws kept per star


class ImportanceResult(NamedTuple):
    """Per star: equal-weight draws z [n, num_keep, 5], k-hat [n], ESS [n], accepted [n],
    and the last proposal's centre [n, 5] and Cholesky factor [n, 5, 5] (which start and
    precondition NUTS for the stars that fail)."""

    z: np.ndarray
    khat: np.ndarray
    ess: np.ndarray
    accepted: np.ndarray
    loc: np.ndarray
    chol: np.ndarray


@full_precision
def run_importance(setup, data: StarData, z_mean, z_sigma, key, config=ImportanceConfig()):
    """Importance-sample the posteriors of n stars.

    Args:
        setup: A ``StarInference``.
        data: The stars' ``StarData`` stacked along a leading axis of n.
        z_mean, z_sigma: Amortized prediction in normalised coordinates [n, 5].
        key: PRNG key.
        config: Proposal and acceptance settings.
    """
    n = len(z_mean)
    weigh = _compiled_weigher(setup, config.num_draws, config.df)
    loc, chol = laplace_proposal(setup, data, z_mean, z_sigma, config)
    for round_ in range(config.refinements + 1):
        key, round_key = jax.random.split(key)
        keys = jax.random.split(round_key, n)
        z, log_w = (np.asarray(a)[:n] for a in weigh(*shard_stars((keys, loc, chol, data))))
        weights, khat = _smoothed_weights(log_w)
        if round_ < config.refinements:
            loc, chol = _refined_proposal(z, weights, loc, chol, config.refine_inflation)
    ess = 1.0 / np.sum(weights**2, axis=1)
    accepted = (khat <= config.max_khat) & (ess >= config.min_ess)
    kept = _resample(z, weights, config.num_keep, np.random.default_rng(np.asarray(key)))
    return ImportanceResult(kept, khat, ess, accepted, loc, chol)


@full_precision
def laplace_proposal(setup, data: StarData, z_mean, z_sigma, config=ImportanceConfig()):
    """Posterior modes [n, 5] and proposal Cholesky factors [n, 5, 5], normalised units."""
    find_mode = _compiled_mode_finder(setup, config.mode_steps, config.mode_learning_rate)
    z_start = np.asarray(z_mean, np.float32)
    mode, hessian = (np.asarray(a) for a in find_mode(*shard_stars((z_start, data))))
    mode, hessian = mode[: len(z_start)], hessian[: len(z_start)]
    loc, cov = proposal_covariance(mode, hessian, z_start, z_sigma)
    chol = config.inflation * np.linalg.cholesky(cov)
    return loc.astype(np.float32), chol.astype(np.float32)


def proposal_covariance(mode, hessian, z_start, z_sigma):
    """(proposal centres [n, 5], covariances [n, 5, 5], positive definite by construction).

    The Laplace approximation (mode, inverse Hessian) where the Hessian is finite and
    well conditioned; elsewhere the amortized prediction (``z_start``, ``z_sigma``).
    """
    hessian = np.asarray(hessian, np.float64)
    finite = np.all(np.isfinite(hessian), axis=(1, 2)) & np.all(np.isfinite(mode), axis=1)
    hessian = np.where(finite[:, None, None], hessian, np.eye(mode.shape[-1]))
    eigenvalues, vectors = np.linalg.eigh(0.5 * (hessian + np.swapaxes(hessian, 1, 2)))
    laplace = finite & (eigenvalues[:, 0] > _MIN_CONDITION * eigenvalues[:, -1])
    inverse = np.where(laplace[:, None], 1.0 / np.where(laplace[:, None], eigenvalues, 1.0), 0.0)
    laplace_cov = np.einsum("nij,nj,nkj->nik", vectors, inverse, vectors)
    fallback = np.eye(mode.shape[-1]) * np.asarray(z_sigma, np.float64)[:, None, :] ** 2
    cov = np.where(laplace[:, None, None], laplace_cov, fallback)
    return np.where(laplace[:, None], mode, z_start), cov


_MIN_CONDITION = 1e-7  # smallest / largest Hessian eigenvalue for a Laplace proposal


@functools.lru_cache(maxsize=4)
def _compiled_mode_finder(setup, steps, learning_rate):
    return jax.jit(jax.vmap(mode_one_star(setup, steps, learning_rate)))


def mode_one_star(setup, steps, learning_rate):
    """The pure one-star ``(z_start [5], data) -> (mode [5], Hessian of -log p there [5, 5])``.

    Adam runs in the unconstrained space of the prior's support, so a bounded prior is
    never left; the objective is the density of z itself (no Jacobian), whose mode and
    curvature the Laplace approximation needs.
    """
    model = setup.star_model
    to_z = dist.biject_to(setup.z_support())
    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))

    def one_star(z_start, data):
        def neg_log_p(z):
            return -log_density(model, (data,), {}, {"z": z})[0]

        def step(carry, _):
            u, state = carry
            grad = jax.grad(lambda v: neg_log_p(to_z(v)))(u)
            updates, state = optimiser.update(grad, state, u)
            return (optax.apply_updates(u, updates), state), None

        u = to_z.inv(z_start)
        (u, _), _ = jax.lax.scan(step, (u, optimiser.init(u)), None, length=steps)
        mode = to_z(u)
        return mode, jax.hessian(neg_log_p)(mode)

    return one_star


@functools.lru_cache(maxsize=4)
def _compiled_weigher(setup, num_draws, df):
    """``weigh_one_star`` over stars, a few at a time (n x num_draws emulator calls at once
    would not fit in cache), jitted: ``(keys [n], loc, chol, data) -> (z, log_w)``."""
    one_star = weigh_one_star(setup, num_draws, df)

    def all_stars(keys, loc, chol, data):
        return jax.lax.map(lambda a: one_star(*a), (keys, loc, chol, data), batch_size=8)

    return jax.jit(all_stars)


def weigh_one_star(setup, num_draws, df):
    """The pure one-star ``(key, loc [5], chol [5, 5], data) -> (z [num_draws, 5], log
    weights)`` with a multivariate Student-t proposal."""
    model = setup.star_model

    def one_star(key, loc, chol, data):
        proposal = dist.MultivariateStudentT(df, loc, scale_tril=chol)
        z = proposal.sample(key, (num_draws,))
        log_target = jax.vmap(lambda zi: log_density(model, (data,), {}, {"z": zi})[0])(z)
        return z, log_target - proposal.log_prob(z)

    return one_star


def _smoothed_weights(log_w):
    """Normalised PSIS weights [n, S] and k-hat [n]; stars without a finite weight get k = inf."""
    finite = np.isfinite(log_w)
    usable = finite.any(axis=1)
    floor = np.min(np.where(finite, log_w, np.inf), axis=1, keepdims=True) - 50.0
    log_w = np.where(finite, log_w, np.where(usable[:, None], floor, 0.0))
    with np.errstate(all="ignore"):  # degenerate tails give k-hat = inf or NaN: rejected
        smoothed, khat = az.psislw(log_w)
    khat = np.where(np.isnan(khat), np.inf, khat)
    weights = np.exp(smoothed)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights, np.where(usable, khat, np.inf)


def _refined_proposal(z, weights, loc, chol, inflation):
    """Student-t location and scale from the weighted draws (kept where degenerate)."""
    mean = np.einsum("ns,nsd->nd", weights, z)
    centred = z - mean[:, None]
    cov = np.einsum("ns,nsd,nse->nde", weights, centred, centred)
    cov = inflation**2 * cov + 1e-6 * np.eye(z.shape[-1])
    ok = np.all(np.isfinite(cov), axis=(1, 2)) & np.all(np.isfinite(mean), axis=1)
    new_chol = np.linalg.cholesky(np.where(ok[:, None, None], cov, np.eye(z.shape[-1])))
    return (
        np.where(ok[:, None], mean, loc).astype(np.float32),
        np.where(ok[:, None, None], new_chol, chol).astype(np.float32),
    )


def _resample(z, weights, size, rng):
    """Systematic resampling: ``size`` equal-weight draws per star [n, size, 5]."""
    positions = (rng.random((len(z), 1)) + np.arange(size)) / size
    cumulative = np.cumsum(weights, axis=1)
    cumulative[:, -1] = 1.0
    picks = np.stack([np.searchsorted(c, p) for c, p in zip(cumulative, positions, strict=True)])
    return np.take_along_axis(z, picks[..., None], axis=1)
