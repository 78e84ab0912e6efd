"""Mixture proposals: a Student-t component at each of a star's posterior modes.

XP spectra often leave a star's logg ambiguous between the giant branch and the main
sequence: its posterior has two modes, and a proposal built on one of them never draws the
other (k-hat then fails, or worse, passes on draws that miss a mode). The mode search
starts from the amortized prediction and from a few fixed logg values; every distinct mode
becomes a component, weighed by its Laplace evidence, with a defensive floor. Refinement
rounds update each component from the weighted draws it is responsible for (one step of
weighted EM, as in population Monte Carlo: Cappe et al. 2008); with one component this is
the weighted mean and covariance.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from scipy.special import gammaln, logsumexp

__all__ = [
    "Mixture",
    "mixture_of_modes",
    "same_mode",
    "refined_mixture",
    "sample_mixture",
    "student_t_log_pdf",
    "mixture_log_pdf",
]

_SAME_MODE = 3.0  # modes closer than this many proposal sds are one mode
_MIN_EVIDENCE = np.log(1e-3)  # components with less posterior mass (Laplace) are dropped
_FLOOR = 0.2  # share of the draws spread evenly over the components (defensive mixture)
_MIN_REFINED_WEIGHT = 0.01


class Mixture(NamedTuple):
    """Per star: component log weights [n, K] (-inf: unused), centres [n, K, d] and scale
    Cholesky factors [n, K, d, d]."""

    log_weight: np.ndarray
    loc: np.ndarray
    chol: np.ndarray

    def main(self):
        """(centre [n, d], Cholesky factor [n, d, d]) of each star's heaviest component."""
        k = np.argmax(self.log_weight, axis=1)
        rows = np.arange(len(k))
        return self.loc[rows, k], self.chol[rows, k]

    def take(self, rows) -> "Mixture":
        return Mixture(*(a[rows] for a in self))

    def put(self, rows, other: "Mixture") -> None:
        for mine, theirs in zip(self, other, strict=True):
            mine[rows] = theirs


def mixture_of_modes(loc, cov, evidence, inflation) -> Mixture:
    """Mixture of the components at modes loc [n, K, d] with covariances cov [n, K, d, d] and
    Laplace log evidences [n, K] (-inf: no mode found). Component 0 (the mode reached from
    the amortized prediction) is always kept; the others only when distinct and not
    negligible."""
    keep = _distinct_modes(loc, cov, evidence)
    # component 0 without a Laplace evidence (its amortized fallback) weighs as the best
    best = np.max(evidence, axis=1)
    evidence = evidence.copy()
    evidence[:, 0] = np.where(
        np.isfinite(evidence[:, 0]), evidence[:, 0], np.nan_to_num(best, neginf=0.0)
    )
    evidence = np.where(keep, evidence, -np.inf)
    laplace = np.exp(evidence - np.max(evidence, axis=1, keepdims=True))
    laplace /= laplace.sum(axis=1, keepdims=True)
    share = (1 - _FLOOR) * laplace + _FLOOR * keep / keep.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_weight = np.log(share)
    return Mixture(log_weight, loc.astype(np.float32), inflation * np.linalg.cholesky(cov))


def _distinct_modes(loc, cov, evidence):
    """Which components to keep [n, K]: component 0, and each later one whose evidence is
    within ``_MIN_EVIDENCE`` of the best and that lies ``_SAME_MODE`` sds from every kept one."""
    n, k_max, _ = loc.shape
    keep = np.zeros((n, k_max), bool)
    keep[:, 0] = True
    best = np.max(evidence, axis=1)
    for k in range(1, k_max):
        candidate = np.isfinite(evidence[:, k]) & (evidence[:, k] > best + _MIN_EVIDENCE)
        for j in range(k):
            candidate &= ~(keep[:, j] & same_mode(loc[:, k], loc[:, j], cov[:, j]))
        keep[:, k] = candidate
    return keep


def same_mode(loc, mode, cov):
    """Whether each of the points ``loc`` [n, d] lies within ``_SAME_MODE`` sds of ``mode``
    [n, d], whose covariance is ``cov`` [n, d, d]: the same mode, for a mixture [n]."""
    gap = np.asarray(loc, np.float64) - mode
    distance = np.einsum("ni,nij,nj->n", gap, np.linalg.inv(cov), gap)
    return distance < _SAME_MODE**2


def sample_mixture(key, mixture_one_star, df, num_draws):
    """(draws [S, d], their log proposal density [S]) of one star's mixture (jax).

    Components are picked by comparing uniforms with the cumulative weights: the same
    program with ``jax.random.categorical`` stalled XLA on this CPU (every thread idle)
    each of the three times it ran."""
    log_weight, loc, chol = mixture_one_star
    pick_key, draw_key = jax.random.split(key)
    cumulative = jnp.cumsum(jnp.exp(log_weight))
    u = cumulative[-1] * jax.random.uniform(pick_key, (num_draws, 1))
    k = jnp.sum(u > cumulative[None, :-1], axis=1)
    # standard draws, each moved by its component (a batch of S distributions would not
    # share the chi-square of a draw across its coordinates)
    d = loc.shape[-1]
    standard = dist.MultivariateStudentT(df, jnp.zeros(d), scale_tril=jnp.eye(d))
    z = loc[k] + jnp.einsum("sij,sj->si", chol[k], standard.sample(draw_key, (num_draws,)))
    per_component = jnp.stack(
        [
            dist.MultivariateStudentT(df, loc[j], scale_tril=chol[j]).log_prob(z)
            for j in range(loc.shape[0])
        ]
    )
    return z, jax.scipy.special.logsumexp(log_weight[:, None] + per_component, axis=0)


def student_t_log_pdf(z, loc, chol, df):
    """Multivariate Student-t log density (numpy) of z [..., S, d] around loc [..., 1, d]
    with scale Cholesky factors chol [..., d, d]: in numpy, since the eager jax equivalent
    compiled anew for every round's number of stars."""
    d = z.shape[-1]
    z, loc, chol = (np.asarray(a, np.float64) for a in (z, loc, chol))
    inverse = np.linalg.inv(chol)  # once per component, not per draw
    whitened = np.einsum("...ij,...sj->...si", inverse, z - loc)
    log_det = np.sum(np.log(np.abs(np.diagonal(chol, axis1=-2, axis2=-1))), axis=-1)
    norm = gammaln((df + d) / 2) - gammaln(df / 2) - 0.5 * d * np.log(df * np.pi)
    return norm - log_det[..., None] - 0.5 * (df + d) * np.log1p(np.sum(whitened**2, axis=-1) / df)


def mixture_log_pdf(z, mixture: Mixture, df):
    """Log density (numpy) [m, S] of draws z [m, S, d] under each star's mixture."""
    log_q = student_t_log_pdf(z[:, None], mixture.loc[:, :, None], mixture.chol, df)
    return logsumexp(_joint(mixture, log_q), axis=1)


def _joint(mixture: Mixture, log_q):
    """Log weight + log density [m, K, S] of each component (-inf where unused)."""
    used = np.isfinite(mixture.log_weight)[..., None]
    return np.where(used, mixture.log_weight[..., None] + log_q, -np.inf)


def refined_mixture(z, weights, mixture: Mixture, inflation, df) -> Mixture:
    """One weighted-EM step from draws z [m, S, d] with normalised weights [m, S]: each
    component's weight, centre and (inflated) covariance from the draws it is responsible
    for; a component left with almost no weight is dropped, a degenerate one kept as it was."""
    log_q = student_t_log_pdf(z[:, None], mixture.loc[:, :, None], mixture.chol, df)
    log_joint = _joint(mixture, log_q)
    responsibility = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    mass = weights[:, None] * np.nan_to_num(responsibility)  # [m, K, S]
    share = mass.sum(axis=2)
    mean = np.einsum("mks,msd->mkd", mass, z) / np.maximum(share, 1e-30)[..., None]
    centred = z[:, None] - mean[:, :, None]
    cov = (
        np.einsum("mks,mksd,mkse->mkde", mass, centred, centred)
        / np.maximum(share, 1e-30)[..., None, None]
    )
    cov = inflation**2 * cov + 1e-6 * np.eye(z.shape[-1])
    used = share >= _MIN_REFINED_WEIGHT
    ok = used & np.all(np.isfinite(cov), axis=(2, 3)) & np.all(np.isfinite(mean), axis=2)
    chol = np.linalg.cholesky(np.where(ok[..., None, None], cov, np.eye(z.shape[-1])))
    with np.errstate(divide="ignore"):
        log_weight = np.where(used, np.log(share / share.sum(1, keepdims=True)), -np.inf)
    return Mixture(
        log_weight,
        np.where(ok[..., None], mean, mixture.loc).astype(np.float32),
        np.where(ok[..., None, None], chol, mixture.chol).astype(np.float32),
    )
