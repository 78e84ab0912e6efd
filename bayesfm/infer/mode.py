"""Each star's posterior mode and the Laplace proposal built on it.

From the transformer's amortized prediction, a damped Newton method with the exact 5 x 5
Hessian finds the mode of the density of z in the unconstrained space of the prior's
support (a bounded prior is never left). Near the mode Newton converges quadratically, so
a handful of steps replace the hundreds a first-order optimiser needs. Far from it the
Hessian may not be positive definite: its eigenvalues are taken in absolute value
(a descent direction whatever the curvature), steps are capped in length, and a step that
does not lower -log p is shortened and retried. The Hessian at the mode gives the
covariance of the importance proposal.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer.util import log_density

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision, shard_stars

__all__ = ["laplace_proposal", "mode_one_star", "proposal_covariance"]

_MAX_STEP = 1.0  # longest Newton step in the unconstrained space (normalised units)
_MIN_CONDITION = 1e-7  # smallest / largest Hessian eigenvalue for a Laplace proposal


@full_precision
def laplace_proposal(setup, data: StarData, z_mean, z_sigma, config):
    """Posterior modes [n, 5] and proposal Cholesky factors [n, 5, 5], normalised units.

    ``config``: an ``ImportanceConfig`` (its ``newton_steps`` and ``inflation``).
    """
    find_mode = _compiled_mode_finder(setup, config.newton_steps)
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


@functools.lru_cache(maxsize=4)
def _compiled_mode_finder(setup, steps):
    return jax.jit(jax.vmap(mode_one_star(setup, steps)))


def mode_one_star(setup, steps):
    """The pure one-star ``(z_start [5], data) -> (mode [5], Hessian of -log p there [5, 5])``
    after ``steps`` damped Newton steps; the objective is the density of z itself (no
    Jacobian), whose mode and curvature the Laplace approximation needs."""
    model = setup.star_model
    to_z = dist.biject_to(setup.z_support())

    def one_star(z_start, data):
        def neg_log_p(z):
            return -log_density(model, (data,), {}, {"z": z})[0]

        def objective(u):
            return neg_log_p(to_z(u))

        value_and_grad, hessian = jax.value_and_grad(objective), jax.hessian(objective)

        def step(carry, _):
            u, value, grad, curvature, shrink = carry
            trial = u + shrink * _newton_direction(grad, curvature)
            trial_value, trial_grad = value_and_grad(trial)
            better = jnp.isfinite(trial_value) & (trial_value <= value)
            keep = functools.partial(jnp.where, better)
            carry = (
                keep(trial, u),
                keep(trial_value, value),
                keep(trial_grad, grad),
                keep(hessian(trial), curvature),
                jnp.where(better, jnp.minimum(1.0, 2.0 * shrink), 0.25 * shrink),
            )
            return carry, None

        u = to_z.inv(z_start)
        start = (u, *value_and_grad(u), hessian(u), jnp.float32(1.0))
        (u, *_), _ = jax.lax.scan(step, start, None, length=steps)
        mode = to_z(u)
        return mode, jax.hessian(neg_log_p)(mode)

    return one_star


def _newton_direction(grad, curvature):
    """-|H|^-1 g (eigenvalues in absolute value, floored), at most ``_MAX_STEP`` long."""
    eigenvalues, vectors = jnp.linalg.eigh(0.5 * (curvature + curvature.T))
    magnitude = jnp.maximum(jnp.abs(eigenvalues), 1e-6 * jnp.max(jnp.abs(eigenvalues)) + 1e-12)
    direction = -vectors @ ((vectors.T @ grad) / magnitude)
    direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, -grad)
    length = jnp.linalg.norm(direction)
    return direction * jnp.minimum(1.0, _MAX_STEP / jnp.maximum(length, 1e-12))
