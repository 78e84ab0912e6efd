"""One star's damped quasi-Newton search for a posterior mode, and the curvature there.

The search runs in the unconstrained space of the prior's support (a bounded prior is never
left): a few rounds, each starting from the exact 5 x 5 Hessian and updating it by BFGS from
the gradients for some steps (an exact Hessian costs 10-20 gradients). Far from the mode the
Hessian may not be positive definite: its eigenvalues are taken in absolute value (a descent
direction whatever the curvature), steps are capped in length, and a step that does not lower
-log p is shortened and retried. The numbers of rounds and steps are arguments of the traced
program, so that one compiled program serves the searches and the shorter polishing rounds
(``bayesfm.infer.mode``).
"""

import functools

import jax
import jax.numpy as jnp
import numpyro.distributions as dist

from bayesfm.infer.mode_starts import neg_log_density

__all__ = ["mode_search", "mode_one_star"]

_MAX_STEP = 1.0  # longest Newton step in the unconstrained space (normalised units)


def mode_one_star(setup, rounds, quasi_steps):
    """``mode_search`` with ``rounds`` and ``quasi_steps`` fixed: the pure one-star
    ``(z_start [5], data) -> (mode [5], Hessian of -log p there [5, 5], -log p there)``."""
    search = mode_search(setup)
    return lambda z_start, data: search(z_start, data, rounds, quasi_steps)


def mode_search(setup):
    """The pure one-star ``(z_start [5], data, rounds, quasi_steps) -> (mode [5], Hessian of
    -log p there [5, 5], -log p there)`` after ``rounds`` of damped quasi-Newton steps; the
    objective is the density of z itself (no Jacobian), whose mode and curvature the Laplace
    approximation needs.

    Each round takes the exact Hessian once, then ``1 + quasi_steps`` steps, the first with
    it, the others with its BFGS updates from the gradients: an exact Hessian costs as much
    as 10-20 gradients, and BFGS keeps most of Newton's progress per step.
    ``quasi_steps=0`` is Newton's method."""
    model = setup.star_model
    to_z = dist.biject_to(setup.z_support())

    def one_star(z_start, data, rounds, quasi_steps):
        def neg_log_p(z):
            return neg_log_density(model, z, data)

        def objective(u):
            return neg_log_p(to_z(u))

        value_and_grad, hessian = jax.value_and_grad(objective), jax.hessian(objective)

        def step(_, carry):
            u, value, grad, inverse, shrink = carry
            trial = u + shrink * _descent(inverse, grad)
            trial_value, trial_grad = value_and_grad(trial)
            better = jnp.isfinite(trial_value) & (trial_value <= value)
            keep = functools.partial(jnp.where, better)
            return (
                keep(trial, u),
                keep(trial_value, value),
                keep(trial_grad, grad),
                keep(_bfgs_update(inverse, trial - u, trial_grad - grad), inverse),
                jnp.where(better, jnp.minimum(1.0, 2.0 * shrink), 0.25 * shrink),
            )

        def round_(_, carry):
            u, value, grad, _, shrink = carry
            carry = (u, value, grad, _abs_inverse(hessian(u)), shrink)
            return jax.lax.fori_loop(0, 1 + quasi_steps, step, carry)

        u = to_z.inv(z_start)
        start = (u, *value_and_grad(u), jnp.eye(len(u)), jnp.float32(1.0))
        u, *_ = jax.lax.fori_loop(0, rounds, round_, start)
        mode = to_z(u)
        return mode, jax.hessian(neg_log_p)(mode), neg_log_p(mode)

    return one_star


def _abs_inverse(curvature):
    """|H|^-1 (eigenvalues in absolute value, floored): a descent metric whatever the
    curvature."""
    eigenvalues, vectors = jnp.linalg.eigh(0.5 * (curvature + curvature.T))
    magnitude = jnp.maximum(jnp.abs(eigenvalues), 1e-6 * jnp.max(jnp.abs(eigenvalues)) + 1e-12)
    inverse = (vectors / magnitude) @ vectors.T
    return jnp.where(jnp.all(jnp.isfinite(inverse)), inverse, jnp.eye(len(curvature)))


def _bfgs_update(inverse, s, y):
    """BFGS's inverse-Hessian update for step s and gradient change y (skipped where
    s.y <= 0, which would lose positive definiteness)."""
    sy = s @ y
    rho = 1.0 / jnp.where(sy > 1e-10, sy, 1.0)
    left = jnp.eye(len(s)) - rho * jnp.outer(s, y)
    updated = left @ inverse @ left.T + rho * jnp.outer(s, s)
    return jnp.where(sy > 1e-10, updated, inverse)


def _descent(inverse, grad):
    """-H^-1 g (-g where that is not finite), at most ``_MAX_STEP`` long."""
    direction = -inverse @ grad
    direction = jnp.where(jnp.all(jnp.isfinite(direction)), direction, -grad)
    length = jnp.linalg.norm(direction)
    return direction * jnp.minimum(1.0, _MAX_STEP / jnp.maximum(length, 1e-12))
