"""Posteriors by importance sampling from the transformer's amortized prediction.

The proposal starts as a multivariate Student-t around the amortized spectra -> labels
prediction (its sigma inflated) and is refined by the weighted moments of its own draws.
Draws are weighted by prior x emulator likelihood / proposal; Pareto-smoothed importance
sampling (Vehtari et al. 2024) gives the weights and their k-hat. A star passes when k-hat
<= ``max_khat`` (the weights' variance is then finite enough to trust) and the effective
sample size is large enough; the rest are for NUTS.
"""

from dataclasses import dataclass
from typing import NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer.util import log_density

from .devices import shard_stars
from .models import StarData

__all__ = ["ImportanceConfig", "ImportanceResult", "run_importance"]


@dataclass(frozen=True)
class ImportanceConfig:
    """Proposal and acceptance settings."""

    num_draws: int = 1000  # per round and star
    refinements: int = 1  # rounds re-centred on the previous round's weighted moments
    df: float = 5.0  # Student-t degrees of freedom: heavy tails guard against a too-narrow proposal
    inflation: float = 2.0  # first proposal's scale / the amortized sigma
    refine_inflation: float = 1.3  # later proposals' scale / the weighted standard deviation
    max_khat: float = 0.7
    min_ess: float = 100.0
    num_keep: int = 1000  # equal-weight draws kept per star


class ImportanceResult(NamedTuple):
    """Per star: equal-weight draws z [n, num_keep, 5], k-hat [n], ESS [n], accepted [n]."""

    z: np.ndarray
    khat: np.ndarray
    ess: np.ndarray
    accepted: np.ndarray


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
    loc = np.asarray(z_mean, np.float32)
    chol = np.asarray(jax.vmap(jnp.diag)(config.inflation * jnp.asarray(z_sigma, jnp.float32)))
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
    return ImportanceResult(kept, khat, ess, accepted)


_WEIGHERS = {}


def _compiled_weigher(setup, num_draws, df):
    """A jitted ``(keys [n], loc [n, 5], chol [n, 5, 5], data) -> (z, log_w)``."""
    cache_key = (id(setup), num_draws, df)
    if cache_key not in _WEIGHERS:
        model = setup.star_model

        def one_star(key, loc, chol, data):
            proposal = dist.MultivariateStudentT(df, loc, scale_tril=chol)
            z = proposal.sample(key, (num_draws,))
            log_target = jax.vmap(lambda zi: log_density(model, (data,), {}, {"z": zi})[0])(z)
            return z, log_target - proposal.log_prob(z)

        _WEIGHERS[cache_key] = (setup, jax.jit(jax.vmap(one_star)))
    return _WEIGHERS[cache_key][1]


def _smoothed_weights(log_w):
    """Normalised PSIS weights [n, S] and k-hat [n]; stars without a finite weight get k = inf."""
    finite = np.isfinite(log_w)
    usable = finite.any(axis=1)
    floor = np.min(np.where(finite, log_w, np.inf), axis=1, keepdims=True) - 50.0
    log_w = np.where(finite, log_w, np.where(usable[:, None], floor, 0.0))
    smoothed, khat = az.psislw(log_w)
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
