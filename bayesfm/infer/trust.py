"""Per-star trust flags: when not to believe a posterior, beyond the sampler's own verdict.

- **fit**: the chi-square of the observed tokens at the posterior median, whitened by the
  noise model's covariance, against its distribution under the noise model with (observed
  tokens - 5) degrees of freedom: chi-square, or for a Student-t noise model with nu
  degrees of freedom, (observed tokens - 5) times an F distribution. A p-value below
  ``min_fit_p`` means the emulator cannot reproduce the star at the labels the posterior
  allows (a star unlike the training set, or bad data).
- **domain**: the fraction of posterior draws where the label prior (fitted on the training
  labels) is below the density that all but ``domain_quantile`` of its own draws reach,
  i.e. outside the training domain; above ``max_outside_fraction`` flags the star. The
  amortized labels (the transformer's spectra -> labels answer, which the prior does not pull
  in) below that density flag it too: a star hotter than every training star has a posterior
  piled at the prior's edge, inside the domain, but an amortized answer outside it.
- **sampler**: the method's own verdict (importance: PSIS k-hat and ESS; NUTS: R-hat, ESS
  and divergences; SVI: the ELBO settled and PSIS k-hat of the guide as a proposal).

``trusted`` is all three.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.bayes.likelihood import whitened_residual
from bayesfm.common.devices import bucket_size, pad_leading

__all__ = [
    "TrustCriteria",
    "domain_threshold",
    "fit_chi_square",
    "fit_p_value",
    "outside_fraction",
    "outside_at",
    "amortized_inside",
    "trust_columns",
    "assess",
    "flag_notes",
]


class TrustCriteria(NamedTuple):
    min_fit_p: float = 1e-3
    max_outside_fraction: float = 0.5
    domain_quantile: float = 1e-3


@functools.lru_cache(maxsize=8)
def domain_threshold(prior, quantile: float, n: int = 20000, seed: int = 0) -> float:
    """Prior log-density [physical units] that a fraction ``1 - quantile`` of its draws exceed
    (kept per prior object: every chunk of a catalogue asks for it twice)."""
    x = prior.sample(jax.random.PRNGKey(seed), (n,))
    return float(np.quantile(np.asarray(_log_prob(prior)(x)), quantile))


@functools.lru_cache(maxsize=8)
def _log_prob(prior):
    """The prior's log-density, compiled once per prior (op by op, its first call in a
    process took seconds)."""
    return jax.jit(prior.log_prob)


def fit_chi_square(setup, data, x):
    """(chi-square [N], degrees of freedom [N]) of stacked ``StarData`` at labels ``x`` [N, 5]."""
    mean, _ = jax.vmap(setup.emulator.emulate)(jnp.asarray(x, jnp.float32))
    scale = jnp.asarray(setup.noise.total_scale)

    def one(values, errors, mask, whitener, mu, sigma):
        solved, _ = whitened_residual(values, errors, mask, whitener, mu, sigma, scale)
        return jnp.sum(solved**2)

    chi2 = jax.vmap(one)(
        data.values, data.errors, data.mask, data.whitener, mean, data.emulator_sigma
    )
    dof = np.maximum(np.asarray(data.mask).sum(axis=1) - len(setup.emulator.inputs), 1)
    return np.asarray(chi2, float), dof


def fit_p_value(chi2, dof, tail_dof=None):
    """P(chi-square >= chi2) [N] for a Gaussian (``tail_dof`` None) or a Student-t noise model
    with ``tail_dof`` degrees of freedom (chi2 / dof ~ F(dof, tail_dof))."""
    chi2, dof = np.asarray(chi2, float), np.asarray(dof, float)
    if tail_dof is None:
        return np.asarray(jax.scipy.special.gammaincc(dof / 2.0, chi2 / 2.0))
    nu = float(tail_dof)
    return np.asarray(jax.scipy.special.betainc(nu / 2.0, dof / 2.0, nu / (nu + chi2)))


def outside_fraction(prior, draws, threshold: float):
    """Fraction [N] of each star's finite draws [N, S, 5] (physical) below ``threshold``."""
    log_prior, finite = _finite_log_prior(prior, draws)
    outside = (log_prior < threshold) & finite
    with np.errstate(invalid="ignore"):
        return outside.sum(axis=1) / np.where(finite.any(axis=1), finite.sum(axis=1), np.nan)


def outside_at(prior, labels, threshold: float):
    """Whether each point [N, 5] (physical) lies where the prior's log-density is below
    ``threshold`` (non-finite points count as outside)."""
    log_prior, finite = _finite_log_prior(prior, labels)
    return ~finite | (log_prior < threshold)


def _finite_log_prior(prior, points):
    """(the prior's log-density [...], whether each point is finite [...]) of points [..., 5]
    (physical); a non-finite point's density is a placeholder."""
    points = np.asarray(points, np.float32)
    finite = np.isfinite(points).all(axis=-1)
    safe = jnp.asarray(np.where(finite[..., None], points, 0.0))
    return np.asarray(_log_prob(prior)(safe)), finite


def trust_columns(
    fit_p, outside, sampler_ok, amortized_outside=None, criteria: TrustCriteria = TrustCriteria()
) -> dict:
    """Columns ``fit_ok``, ``amortized_in_domain``, ``in_domain`` and ``trusted`` (bool [N])
    from the three checks (``amortized_outside`` None: not checked)."""
    fit_ok = np.asarray(fit_p) >= criteria.min_fit_p
    if amortized_outside is None:
        amortized_outside = np.zeros(np.shape(fit_ok), bool)
    amortized_in_domain = ~np.asarray(amortized_outside, bool)
    in_domain = (np.asarray(outside) <= criteria.max_outside_fraction) & amortized_in_domain
    return {
        "fit_ok": fit_ok,
        "amortized_in_domain": amortized_in_domain,
        "in_domain": in_domain,
        "trusted": fit_ok & in_domain & np.asarray(sampler_ok, bool),
    }


def amortized_inside(setup, amortized, criteria: TrustCriteria):
    """Whether each star's amortized labels [N, 5] (physical) lie in the training domain."""
    threshold = domain_threshold(setup.prior, criteria.domain_quantile)
    return ~outside_at(setup.prior, amortized, threshold)


def assess(setup, data, medians, draws, sampler_ok, amortized, criteria: TrustCriteria) -> dict:
    """Every trust column [N] for stacked ``StarData`` of N stars.

    Args:
        setup: The ``StarInference`` the posteriors came from.
        data: The stars' stacked ``StarData``.
        medians: Posterior medians [N, 5] (physical).
        draws: Posterior draws [N, S, 5] (physical; NaN rows are padding).
        sampler_ok: The sampler's verdict per star [N].
        amortized: The stars' amortized labels [N, 5] (physical).
        criteria: Thresholds.

    Returns:
        ``fit_chi2``, ``fit_dof``, ``fit_p``, ``outside_domain_fraction``, ``fit_ok``,
        ``amortized_in_domain``, ``in_domain`` and ``trusted``.
    """
    n = len(medians)
    # padded to a bucket of stars: a chunk with fewer stars reuses the compiled checks
    data, medians, draws, amortized = pad_leading((data, medians, draws, amortized), bucket_size(n))
    chi2, dof = fit_chi_square(setup, data, medians)
    p = fit_p_value(chi2, dof, setup.noise.tail_dof)
    threshold = domain_threshold(setup.prior, criteria.domain_quantile)
    outside = outside_fraction(setup.prior, draws, threshold)
    amortized_outside = outside_at(setup.prior, amortized, threshold)
    chi2, dof, p, outside, amortized_outside = (
        a[:n] for a in (chi2, dof, p, outside, amortized_outside)
    )
    return {
        "fit_chi2": chi2,
        "fit_dof": dof,
        "fit_p": p,
        "outside_domain_fraction": outside,
        **trust_columns(p, outside, sampler_ok, amortized_outside, criteria),
    }


def flag_notes(fit_ok: bool, in_domain: bool, amortized_in_domain: bool = True) -> list:
    """Human-readable reasons for a star's trust flags."""
    notes = [] if fit_ok else ["emulator cannot reproduce the star (chi-square p-value)"]
    if not amortized_in_domain:
        return notes + ["amortized labels outside the training labels' domain"]
    return notes + ([] if in_domain else ["posterior outside the training labels' domain"])
