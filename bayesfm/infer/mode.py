"""Each star's posterior modes and the Laplace mixture proposal built on them.

From the transformer's amortized prediction, a damped quasi-Newton method finds the mode of the
density of z in the unconstrained space of the prior's support (a bounded prior is never left):
a few rounds, each starting from the exact 5 x 5 Hessian and updating it by BFGS from the
gradients for some steps (an exact Hessian costs 10-20 gradients). Far from the mode the Hessian
may not be positive definite: its eigenvalues are taken in absolute value (a descent direction
whatever the curvature), steps are capped in length, and a step that does not lower -log p is
shortened and retried. The Hessian at a mode gives its component's covariance in the importance
proposal (``bayesfm.infer.mixture``); besides the amortized prediction, the search starts from a
few fixed logg values, for a second mode (giant or dwarf), and from the densest of points
scattered widely around the amortized prediction (``ImportanceConfig.scout_draws``): modes the
amortized start cannot reach, behind a ridge of low density, in the teff / metallicity /
extinction degeneracy of low-resolution spectra (``bayesfm.infer.mode_starts``). A model's
proposal emulator (an MLP distilled from it, ``bayesfm.model.proposal_emulator``) scouts and
searches from the other starts, and a round with the emulator's exact Hessian from each of its
modes gives the posterior's own; the amortized start's search stays the emulator's (a mode
within a few sds of that one, which the mixture would merge into it, gets no round).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import bucket_size, full_precision, in_star_blocks
from bayesfm.common.stored_programs import stored_jit
from bayesfm.infer.mixture import Mixture, mixture_of_modes, same_mode
from bayesfm.infer.mode_starts import logg_starts, neg_log_density, scouted_starts

__all__ = ["LaplaceProposal", "laplace_proposal", "mode_one_star", "proposal_covariance"]

_MAX_STEP = 1.0  # longest Newton step in the unconstrained space (normalised units)
_MIN_CONDITION = 1e-7  # smallest / largest Hessian eigenvalue for a Laplace proposal
CPU_STAR_BLOCK = 16  # stars per mode-search call on a CPU
POLISH_STEPS = 10  # quasi-Newton steps after the Newton step from a proposal emulator's mode


class LaplaceProposal(NamedTuple):
    """The stars' mixture proposal, and the target-density evaluations its mode searches took
    by kind (densities, gradients, exact Hessians; the proposal emulator's under their own keys)."""

    mixture: Mixture
    evaluations: dict


@full_precision
def laplace_proposal(setup, data: StarData, z_mean, z_sigma, config) -> LaplaceProposal:
    """Each star's mixture proposal (normalised units): a component at every distinct mode
    reached from the amortized prediction ``z_mean``, from it with logg moved
    (``config.logg_starts``) and from scouted points (``config.scout_draws``).

    ``config``: an ``ImportanceConfig`` (its ``mode_rounds``, ``quasi_newton_steps``, starts,
    scouting, ``inflation`` and ``proposal_emulator``).
    """
    searcher = setup.proposal_setup if config.proposal_emulator else setup
    find_mode = _compiled_mode_finder(setup, config.mode_rounds, config.quasi_newton_steps)
    fast_find_mode = _compiled_mode_finder(searcher, config.mode_rounds, config.quasi_newton_steps)
    polish = None if searcher is setup else _compiled_mode_finder(setup, 1, POLISH_STEPS)
    n = len(z_mean)
    # on a CPU in blocks of a fixed size, as fast per star as one batch of 64: one compiled
    # search serves any number of sampled stars, with at most a block's worth of padding
    block = CPU_STAR_BLOCK if jax.default_backend() == "cpu" else bucket_size(n)
    components, polished = [], 0
    # one search per start, each the same compiled program over the n stars
    z_mean = np.asarray(z_mean, np.float32)
    starts = [z_mean]
    starts += logg_starts(setup, z_mean, config.logg_starts, config.farthest_logg_start_only)
    if config.scout_draws:
        starts += scouted_starts(searcher, data, z_mean, z_sigma, config)
    for index, start in enumerate(starts):
        # the amortized start's search is the emulator's own: a proposal emulator's landscape
        # can lead it to another mode, and a star whose main mode is missed goes to NUTS
        if index == 0 or polish is None:
            mode, hessian, value = in_star_blocks(find_mode, (start, data), n, block)
        else:
            mode, hessian, value = in_star_blocks(fast_find_mode, (start, data), n, block)
            rows = _to_polish(mode, components[0])
            mode, hessian, value = _polished(
                polish, (mode, hessian, value), start, data, rows, block
            )
            polished += len(rows)
        loc, cov, laplace = proposal_covariance(mode, hessian, z_mean, z_sigma)
        evidence = np.where(laplace, 0.5 * np.linalg.slogdet(cov)[1] - value, -np.inf)
        components.append((loc, cov, evidence))
    loc, cov, evidence = (np.stack(parts, axis=1) for parts in zip(*components, strict=True))
    mixture = mixture_of_modes(loc, cov, evidence, config.inflation)
    return LaplaceProposal(mixture, _evaluations(setup, n, config, polished))


def _to_polish(mode, main):
    """Stars whose proposal emulator's mode ``mode`` [n, 5] needs the emulator's round: all but
    those found within ``same_mode`` of the Laplace component ``main`` (centres, covariances,
    evidences) from the amortized start, which is that mode already and would be merged
    into it."""
    loc, cov, evidence = main
    found = np.all(np.isfinite(mode), axis=1)
    return np.flatnonzero(~(found & np.isfinite(evidence) & same_mode(mode, loc, cov)))


def _polished(polish, searched, start, data, rows, block):
    """(mode, Hessian, -log p) of each star: ``polish``'s round with the emulator from the
    ``searched`` mode (or, where none was found, from ``start``) for stars ``rows``; no mode
    for the others."""
    out = tuple(
        np.full_like(a, fill) for a, fill in zip(searched, (np.nan, np.nan, np.inf), strict=True)
    )
    if len(rows):
        mode = searched[0][rows]
        found = np.all(np.isfinite(mode), axis=1, keepdims=True)
        begin = np.where(found, mode, np.asarray(start)[rows])
        subset = jax.tree_util.tree_map(lambda a: np.asarray(a)[rows], data)
        modes = in_star_blocks(polish, (begin, subset), len(rows), block)
        for whole, part in zip(out, modes, strict=True):
            whole[rows] = part
    return out


def _evaluations(setup, n: int, config, polished: int) -> dict:
    """Densities (scouting), gradients and exact Hessians of the target that the mode
    searches of n stars took, ``polished`` of them finished by the emulator; those of the
    proposal emulator, where it searches, under their own keys."""
    searches = n * config.mode_searches
    per_search = {
        "gradients": config.mode_rounds * (1 + config.quasi_newton_steps),
        "hessians": config.mode_rounds + 1,
    }
    if not config.proposal_emulator or setup.proposal_setup is setup:
        return {
            "mode_scout_densities": n * config.scout_draws,
            "mode_gradients": searches * per_search["gradients"],
            "mode_hessians": searches * per_search["hessians"],
        }
    others = n * (config.mode_searches - 1)  # the amortized start's search is the emulator's
    return {
        "mode_scout_densities": 0,
        "mode_gradients": n * per_search["gradients"] + polished * (1 + POLISH_STEPS),
        "mode_hessians": n * per_search["hessians"] + polished * 2,
        "proposal_emulator_mode_scout_densities": n * config.scout_draws,
        "proposal_emulator_mode_gradients": others * per_search["gradients"],
        "proposal_emulator_mode_hessians": others * per_search["hessians"],
    }


def proposal_covariance(mode, hessian, z_start, z_sigma):
    """(proposal centres [n, 5], covariances [n, 5, 5], positive definite by construction,
    and whether each is the Laplace approximation [n]).

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
    return np.where(laplace[:, None], mode, z_start), cov, laplace


@functools.lru_cache(maxsize=4)
def _compiled_mode_finder(setup, rounds, quasi_steps):
    finder = jax.vmap(mode_one_star(setup, rounds, quasi_steps))
    return stored_jit(finder, "mode_finder", setup.program_key, rounds, quasi_steps)


def mode_one_star(setup, rounds, quasi_steps):
    """The pure one-star ``(z_start [5], data) -> (mode [5], Hessian of -log p there [5, 5],
    -log p there)`` after ``rounds`` of damped quasi-Newton steps; the objective is the
    density of z itself (no Jacobian), whose mode and curvature the Laplace approximation
    needs.

    Each round takes the exact Hessian once, then ``1 + quasi_steps`` steps, the first with
    it, the others with its BFGS updates from the gradients: an exact Hessian costs as much
    as 10-20 gradients, and BFGS keeps most of Newton's progress per step.
    ``quasi_steps=0`` is Newton's method."""
    model = setup.star_model
    to_z = dist.biject_to(setup.z_support())

    def one_star(z_start, data):
        def neg_log_p(z):
            return neg_log_density(model, z, data)

        def objective(u):
            return neg_log_p(to_z(u))

        value_and_grad, hessian = jax.value_and_grad(objective), jax.hessian(objective)

        def step(carry, _):
            u, value, grad, inverse, shrink = carry
            trial = u + shrink * _descent(inverse, grad)
            trial_value, trial_grad = value_and_grad(trial)
            better = jnp.isfinite(trial_value) & (trial_value <= value)
            keep = functools.partial(jnp.where, better)
            carry = (
                keep(trial, u),
                keep(trial_value, value),
                keep(trial_grad, grad),
                keep(_bfgs_update(inverse, trial - u, trial_grad - grad), inverse),
                jnp.where(better, jnp.minimum(1.0, 2.0 * shrink), 0.25 * shrink),
            )
            return carry, None

        def round_(carry, _):
            u, value, grad, _, shrink = carry
            carry = (u, value, grad, _abs_inverse(hessian(u)), shrink)
            carry, _ = jax.lax.scan(step, carry, None, length=1 + quasi_steps)
            return carry, None

        u = to_z.inv(z_start)
        start = (u, *value_and_grad(u), jnp.eye(len(u)), jnp.float32(1.0))
        (u, *_), _ = jax.lax.scan(round_, start, None, length=rounds)
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
