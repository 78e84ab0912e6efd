"""Each star's posterior modes and the Laplace mixture proposal built on them.

From the transformer's amortized prediction, a damped quasi-Newton search
(``bayesfm.infer.mode_search``) finds the mode of the density of z; the Hessian at a mode gives
its component's covariance in the importance proposal (``bayesfm.infer.mixture``). Besides the
amortized prediction, the search starts from a few fixed logg values, for a second mode (giant
or dwarf), and from the densest of points scattered widely around the amortized prediction
(``ImportanceConfig.scout_draws``): modes the amortized start cannot reach, behind a ridge of
low density, in the teff / metallicity / extinction degeneracy of low-resolution spectra
(``bayesfm.infer.mode_starts``). A model's proposal emulator (an MLP distilled from it,
``bayesfm.model.proposal_emulator``) scouts and searches from the other starts, and a round with
the emulator's exact Hessian from each of its modes gives the posterior's own; the amortized
start's search stays the emulator's (a mode within a few sds of that one, which the mixture
would merge into it, gets no round).
"""

import functools
from typing import NamedTuple

import jax
import numpy as np

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import bucket_size, full_precision, in_star_blocks
from bayesfm.common.stored_programs import stored_jit
from bayesfm.infer.mixture import Mixture, mixture_of_modes, same_mode
from bayesfm.infer.mode_search import mode_search
from bayesfm.infer.mode_starts import logg_starts, scouted_starts

__all__ = ["LaplaceProposal", "laplace_proposal", "proposal_covariance"]

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
    find_mode = _compiled_mode_finder(setup)
    fast_find_mode = _compiled_mode_finder(searcher)
    polish = searcher is not setup
    search_lengths = (np.int32(config.mode_rounds), np.int32(config.quasi_newton_steps))
    n = len(z_mean)
    # on a CPU in blocks of a fixed size, as fast per star as one batch of 64: one compiled
    # search serves any number of sampled stars, with at most a block's worth of padding
    block = CPU_STAR_BLOCK if jax.default_backend() == "cpu" else bucket_size(n)
    z_mean = np.asarray(z_mean, np.float32)
    starts = [z_mean]
    starts += logg_starts(setup, z_mean, config.logg_starts, config.farthest_logg_start_only)
    if config.scout_draws:
        starts += scouted_starts(searcher, data, z_mean, z_sigma, config)
    # one search per start over the n stars; the amortized start's is the emulator's own: a
    # proposal emulator's landscape can lead it to another mode, and a star whose main mode
    # is missed goes to NUTS
    searches = [in_star_blocks(find_mode, (z_mean, data), n, block, search_lengths)]
    searches += [
        in_star_blocks(fast_find_mode, (start, data), n, block, search_lengths)
        for start in starts[1:]
    ]
    main = _component(searches[0], z_mean, z_sigma)
    polished = 0
    if polish:
        searches[1:], polished = _polished(find_mode, searches[1:], starts[1:], data, main, block)
    components = [main] + [_component(searched, z_mean, z_sigma) for searched in searches[1:]]
    loc, cov, evidence = (np.stack(parts, axis=1) for parts in zip(*components, strict=True))
    mixture = mixture_of_modes(loc, cov, evidence, config.inflation)
    return LaplaceProposal(mixture, _evaluations(setup, n, config, polished))


def _component(searched, z_mean, z_sigma):
    """(centres, covariances, Laplace log evidences) of the proposal's components at the
    ``searched`` (mode, Hessian, -log p) of each star."""
    mode, hessian, value = searched
    loc, cov, laplace = proposal_covariance(mode, hessian, z_mean, z_sigma)
    return loc, cov, np.where(laplace, 0.5 * np.linalg.slogdet(cov)[1] - value, -np.inf)


def _to_polish(mode, main):
    """Stars whose proposal emulator's mode ``mode`` [n, 5] needs the emulator's round: all but
    those found within ``same_mode`` of the Laplace component ``main`` (centres, covariances,
    evidences) from the amortized start, which is that mode already and would be merged
    into it."""
    loc, cov, evidence = main
    found = np.all(np.isfinite(mode), axis=1)
    return np.flatnonzero(~(found & np.isfinite(evidence) & same_mode(mode, loc, cov)))


def _polished(find_mode, searches, starts, data, main, block):
    """The proposal emulator's ``searches`` (mode, Hessian, -log p) from ``starts``, each
    star's replaced by a polishing round of ``find_mode`` (the emulator's) from its mode (or,
    where none was found, from its start), or by no mode where ``_to_polish`` finds it the
    ``main`` one already; and the number of rounds run. All the rounds go in one call, so
    that the blocks of stars are padded once."""
    fills = (np.nan, np.nan, np.inf)
    out = [tuple(np.full_like(a, f) for a, f in zip(s, fills, strict=True)) for s in searches]
    rows = [_to_polish(searched[0], main) for searched in searches]
    every = np.concatenate([np.zeros(0, int), *rows])
    if not len(every):
        return out, 0
    modes = np.concatenate([searched[0][r] for searched, r in zip(searches, rows, strict=True)])
    begins = np.concatenate([np.asarray(start)[r] for start, r in zip(starts, rows, strict=True)])
    begin = np.where(np.all(np.isfinite(modes), axis=1, keepdims=True), modes, begins)
    subset = jax.tree_util.tree_map(lambda a: np.asarray(a)[every], data)
    lengths = (np.int32(1), np.int32(POLISH_STEPS))
    rounds = in_star_blocks(find_mode, (begin, subset), len(every), block, lengths)
    first = 0
    for parts, r in zip(out, rows, strict=True):
        for whole, part in zip(parts, rounds, strict=True):
            whole[r] = part[first : first + len(r)]
        first += len(r)
    return out, len(every)


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
def _compiled_mode_finder(setup):
    """``mode_search`` over stars, jitted: ``(z_start [n, 5], data, rounds, quasi_steps)``, one
    program for any numbers of rounds and steps (the searches and the polishing rounds)."""
    finder = jax.vmap(mode_search(setup), in_axes=(0, 0, None, None))
    return stored_jit(finder, "mode_finder", setup.program_key)
