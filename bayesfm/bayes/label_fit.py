"""Labels fitted to a star's tokens through the emulator, without a prior: damped
Gauss-Newton in labels scaled by their spread, with the fit's covariance and leverage.

The noise-model fit (``bayesfm.bayes.noise_fit``) uses it to tell the emulator's error in
label space apart from the fit's own uncertainty.
"""

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.bayes.likelihood import masked_correlation_whitener
from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.model.emulator import Emulator

__all__ = ["fit_labels"]

_GAUSS_NEWTON_STEPS = 12


def fit_labels(emulator: Emulator, noise: NoiseModel, start, observed, obs_error):
    """Each star's labels fitted to its tokens (maximum likelihood under ``noise``'s c and R).

    Damped Gauss-Newton in inputs scaled by their spread, from ``start`` [N, n_in]
    (physical); the emulator's sigma is held at ``start``.

    Returns:
        (fitted labels [N, n_in], their variances [N, n_in] from the inverse Fisher matrix,
        each token's leverage [N, K]: the diagonal of the hat matrix of the scaled Jacobian,
        exact for independent tokens).
    """
    start = np.asarray(start, np.float32)
    loc, spread = start.mean(axis=0), start.std(axis=0)
    mask = np.isfinite(observed)
    values = np.where(mask, observed, 0.0).astype(np.float32)
    errors = np.where(mask, obs_error, 1.0).astype(np.float32)
    _, sigma = jax.vmap(emulator.emulate)(jnp.asarray(start))
    # the whitening matrix once per star, so that the loop below is matmuls and elementwise
    # operations only: XLA's CPU solvers inside a vmapped loop can deadlock on a 2-core
    # machine (reproduced with jaxlib 0.10.2: every thread idle, the result never ready)
    whitening = jax.vmap(masked_correlation_whitener, in_axes=(None, 0))(
        jnp.asarray(noise.correlation), jnp.asarray(mask)
    )
    scale = jnp.asarray(noise.total_scale)

    def residual(z, y, e, m, w, sd):
        mean, _ = emulator.emulate(loc + spread * z)
        return w @ jnp.where(m, (y - mean) / (scale * jnp.sqrt(e**2 + sd**2)), 0.0)

    def one_star(z, y, e, m, w, sd):
        def step(_, state):
            z, damping = state
            r = residual(z, y, e, m, w, sd)
            jac = jax.jacfwd(residual)(z, y, e, m, w, sd)
            fisher = jac.T @ jac
            damped = fisher + damping * jnp.diag(jnp.diag(fisher) + 1e-6)
            usable = jnp.all(jnp.isfinite(damped)) & jnp.all(jnp.isfinite(r))
            damped = jnp.where(usable, damped, jnp.eye(len(z)))
            candidate = z - _spd_solve(damped, jnp.where(usable, jac.T @ r, 0.0))
            better = usable & (jnp.sum(residual(candidate, y, e, m, w, sd) ** 2) < jnp.sum(r**2))
            return jnp.where(better, candidate, z), jnp.where(better, damping / 3, damping * 4)

        z, _ = jax.lax.fori_loop(0, _GAUSS_NEWTON_STEPS, step, (z, jnp.float32(1e-2)))
        jac = jax.jacfwd(residual)(z, y, e, m, w, sd)
        covariance = _ridge_inverse(jac.T @ jac)
        scaled = jax.jacfwd(lambda v: residual(v, y, e, m, jnp.eye(len(y)), sd))(z)
        hat = jnp.sum((scaled @ _ridge_inverse(scaled.T @ scaled)) * scaled, axis=1)
        return z, jnp.diag(covariance), hat

    z0 = (start - loc) / spread
    z, variance, leverage = jax.jit(jax.vmap(one_star))(
        z0, values, errors, jnp.asarray(mask), whitening, sigma
    )
    leverage = np.where(mask, np.asarray(leverage), np.nan)
    return loc + spread * np.asarray(z), np.asarray(variance) * spread**2, leverage


def _ridge_inverse(matrix):
    """Inverse of a symmetric positive semi-definite matrix with a tiny ridge; NaN where the
    matrix is not finite."""
    ridge = 1e-9 * jnp.trace(matrix) + 1e-30
    regular = matrix + ridge * jnp.eye(len(matrix))
    usable = jnp.all(jnp.isfinite(regular))
    inverse = _spd_solve(jnp.where(usable, regular, jnp.eye(len(matrix))), jnp.eye(len(matrix)))
    return jnp.where(usable, inverse, jnp.nan)


def _spd_solve(matrix, rhs):
    """matrix^-1 rhs for a small symmetric positive definite matrix, by a Cholesky
    factorisation unrolled into elementwise operations (no solver calls: see fit_labels)."""
    n = matrix.shape[0]
    lower = [[None] * n for _ in range(n)]
    for j in range(n):
        diagonal = matrix[j, j] - sum(lower[j][k] ** 2 for k in range(j))
        lower[j][j] = jnp.sqrt(diagonal)
        for i in range(j + 1, n):
            off = matrix[i, j] - sum(lower[i][k] * lower[j][k] for k in range(j))
            lower[i][j] = off / lower[j][j]
    forward = []
    for i in range(n):  # lower @ y = rhs
        forward.append((rhs[i] - sum(lower[i][k] * forward[k] for k in range(i))) / lower[i][i])
    solution = [None] * n
    for i in reversed(range(n)):  # lower.T @ x = y
        known = sum(lower[k][i] * solution[k] for k in range(i + 1, n))
        solution[i] = (forward[i] - known) / lower[i][i]
    return jnp.stack(solution)
