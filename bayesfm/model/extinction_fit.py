"""Each star's K-band extinction fitted through the emulator, its other labels held fixed.

APOGEE's ``ak_targ`` (RJCE) scatters by ~0.03-0.05 mag of A_K, i.e. 0.1-0.2 mag of
E(BP-RP): a noisy label. Here A_K is a latent per-star parameter with

    -2 log p(A_K | labels, tokens) = sum_k [ (obs_k - mean_k)^2 / s_k^2 + log s_k^2 ]
                                     + ((A_K - prior_mean) / prior_sd)^2,
    s_k^2 = obs_error_k^2 + emulator_sigma_k(labels, A_K)^2,

minimised on a grid whose best point and neighbours fix a parabola: its vertex is the
fitted A_K, its curvature the 1-sigma uncertainty (``sqrt(2 / curvature)``). A star with
no prior (``prior_mean`` NaN) is searched over ``broad_range`` with a flat prior.
Training uses it to clean the a_k label; the fidelity benchmark to free A_K per star.
With ``anchor``, the refitted values are put on the raw label's scale
(``bayesfm.model.extinction_anchor``).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.model.emulator import Emulator, a_k_scale_of
from bayesfm.model.extinction_anchor import ExtinctionFit, anchor_to_label
from bayesfm.tokens.star_tokens import StarTokens

FREE_RANGE_MAG = (-0.2, 1.5)  # the transformer's a_k searched without a prior

__all__ = [
    "ExtinctionFit",
    "fit_extinction",
    "fit_free_extinction",
    "free_range_of",
    "FREE_RANGE_MAG",
    "extinction_objective",
    "clean_extinction",
    "save_extinction",
    "load_extinction",
    "default_extinction_path",
]


def extinction_objective(emulate, labels, a_k, observed, errors):
    """-2 log-likelihood (up to a constant) of one star's tokens at each A_K of a grid.

    Args:
        emulate: The emulator function, ``x [5] -> (mean [K], sigma [K])``.
        labels: teff [K], logg, fe_h, alpha_m [dex]: shape [4].
        a_k: Grid of extinctions [G] [mag].
        observed: Observed tokens [K]; NaN where absent (they add nothing).
        errors: Their 1-sigma errors [K].

    Returns:
        chi-square + log det [G].
    """
    inputs = jnp.concatenate([jnp.broadcast_to(labels, (a_k.shape[0], 4)), a_k[:, None]], axis=1)
    mean, sigma = jax.vmap(emulate)(inputs)
    present = jnp.isfinite(observed)
    variance = jnp.where(present, errors, 1.0) ** 2 + sigma**2
    residual = jnp.where(present, observed, 0.0) - mean
    terms = jnp.where(present, residual**2 / variance + jnp.log(variance), 0.0)
    return jnp.sum(terms, axis=1)


def _make_star_fit(emulate, n_grid, broad_range, prior_halfwidth, refine):
    offsets = jnp.linspace(-1.0, 1.0, n_grid)
    broad_centre = 0.5 * (broad_range[0] + broad_range[1])
    broad_halfwidth = 0.5 * (broad_range[1] - broad_range[0])

    def objective(grid, labels, observed, errors, prior_mean, prior_sd):
        value = extinction_objective(emulate, labels, grid, observed, errors)
        prior = jnp.where(jnp.isfinite(prior_mean), ((grid - prior_mean) / prior_sd) ** 2, 0.0)
        return value + prior

    def fit_one(labels, observed, errors, prior_mean, prior_sd):
        has_prior = jnp.isfinite(prior_mean)
        centre = jnp.where(has_prior, prior_mean, broad_centre)
        halfwidth = jnp.where(has_prior, prior_halfwidth * prior_sd, broad_halfwidth)
        grid = centre + halfwidth * offsets
        values = objective(grid, labels, observed, errors, prior_mean, prior_sd)
        if refine:  # a second grid spanning the best point's neighbours
            grid = grid[jnp.argmin(values)] + (grid[1] - grid[0]) * offsets
            values = objective(grid, labels, observed, errors, prior_mean, prior_sd)
        best = jnp.clip(jnp.argmin(values), 1, n_grid - 2)
        left, mid, right = values[best - 1], values[best], values[best + 1]
        step = grid[1] - grid[0]
        curvature = (left - 2 * mid + right) / step**2
        shift = jnp.where(
            curvature > 0, 0.5 * step * (left - right) / (left - 2 * mid + right), 0.0
        )
        a_k = grid[best] + jnp.clip(shift, -step, step)
        a_k_err = jnp.where(curvature > 0, jnp.sqrt(2.0 / jnp.maximum(curvature, 1e-12)), halfwidth)
        return a_k, a_k_err

    return jax.jit(jax.vmap(fit_one))


def fit_extinction(
    emulator: Emulator,
    labels,
    observed,
    errors,
    prior_mean=None,
    prior_sd: float = 0.05,
    broad_range=(-0.2, 3.0),
    n_grid: int = 25,
    prior_halfwidth: float = 6.0,
    refine: bool = False,
    batch_size: int = 256,
    progress: bool = False,
) -> ExtinctionFit:
    """Fit A_K for N stars at their other labels.

    Args:
        emulator: A frozen emulator whose inputs are the four labels then ``a_k``.
        labels: teff [K], logg, fe_h, alpha_m [dex]: [N, 4].
        observed: The emulator's output tokens as observed [N, K] (NaN where absent).
        errors: Their 1-sigma errors [N, K].
        prior_mean: Gaussian prior centres [N] [mag] (e.g. ak_targ); NaN or None: a flat
            prior over ``broad_range``.
        prior_sd: Prior 1-sigma width [mag].
        broad_range: (low, high) [mag] searched without a prior.
        n_grid: Grid points per star.
        prior_halfwidth: With a prior, the grid spans prior_mean +- this many prior_sd.
        refine: Search a second grid of ``n_grid`` points between the best point's neighbours.
        batch_size: Stars per compiled call.
        progress: Show a progress bar.
    """
    if emulator.inputs[-1] != "a_k" or len(emulator.inputs) != 5:
        raise ValueError(
            f"the emulator's inputs must be four labels then a_k, not {emulator.inputs}"
        )
    labels = np.asarray(labels, np.float32)
    n = len(labels)
    prior_mean = np.full(n, np.nan) if prior_mean is None else np.asarray(prior_mean)
    fit = _make_star_fit(emulator.emulate, n_grid, broad_range, prior_halfwidth, refine)
    a_k, a_k_err = np.full(n, np.nan), np.full(n, np.nan)
    sd = np.float32(prior_sd)
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="fitting A_K"):
        rows = np.arange(start, min(start + batch_size, n))
        padded = np.resize(rows, batch_size)  # one compiled shape; extra rows are repeats
        result = fit(
            labels[padded],
            np.asarray(observed, np.float32)[padded],
            np.asarray(errors, np.float32)[padded],
            prior_mean[padded].astype(np.float32),
            np.full(batch_size, sd),
        )
        a_k[rows], a_k_err[rows] = (np.asarray(r)[: len(rows)] for r in result)
    no_tokens = ~np.isfinite(np.asarray(observed)).any(axis=1)
    a_k[no_tokens], a_k_err[no_tokens] = np.nan, np.nan
    return ExtinctionFit(a_k, a_k_err)


def fit_free_extinction(
    emulator: Emulator, labels, observed, errors, progress=False, a_k_range=FREE_RANGE_MAG
):
    """A_K per star without a prior, as a posterior frees it: a fine grid (35 points over
    ``a_k_range``, then 35 between the best point's neighbours). ``a_k_range``: on the
    emulator's A_K scale (``free_range_of`` the model); the other arguments as for
    ``fit_extinction``."""
    return fit_extinction(
        emulator,
        labels,
        observed,
        errors,
        broad_range=a_k_range,
        n_grid=35,
        refine=True,
        progress=progress,
    )


def free_range_of(model) -> tuple:
    """``FREE_RANGE_MAG``, a range of the transformer's own a_k, on the A_K scale of
    ``model``'s emulator: a search over it queries the transformer only at a_k contexts
    its training produced."""
    scale = a_k_scale_of(model)
    return FREE_RANGE_MAG if scale is None else tuple(scale.true_a_k(a) for a in FREE_RANGE_MAG)


def clean_extinction(
    emulator: Emulator,
    tokens: StarTokens,
    prior_mean,
    prior_sd: float = 0.05,
    progress=False,
    anchor: bool = False,
) -> StarTokens:
    """``tokens`` with the a_k of every star that has all four labels refitted (value and
    error) at those labels, with a N(``prior_mean``, ``prior_sd``) prior (flat over
    ``fit_extinction``'s broad range where ``prior_mean`` is NaN); other stars unchanged.

    Args:
        emulator: Frozen emulator (four labels and a_k -> observables).
        tokens: Stars with the emulator's input and output tokens.
        prior_mean: The raw a_k label per star [N] [mag] (NaN: none).
        prior_sd: Prior 1-sigma width [mag].
        anchor: Map the fitted values per class onto the raw label's scale (``anchor_to_label``).
    """
    labels = tokens.values[:, tokens.index(emulator.inputs[:4])]
    outputs = tokens.index(emulator.outputs)
    rows = np.nonzero(np.isfinite(labels).all(axis=1))[0]
    fit = fit_extinction(
        emulator,
        labels[rows],
        tokens.values[rows][:, outputs],
        tokens.errors[rows][:, outputs],
        np.asarray(prior_mean)[rows],
        prior_sd,
        progress=progress,
    )
    if anchor:
        fit = anchor_to_label(fit, labels[rows], np.asarray(prior_mean)[rows])
    a_k, a_k_err = (column.copy() for column in tokens.column("a_k"))
    fitted = np.isfinite(fit.a_k)
    a_k[rows[fitted]], a_k_err[rows[fitted]] = fit.a_k[fitted], fit.a_k_err[fitted]
    return tokens.with_column("a_k", a_k, a_k_err)


def save_extinction(path, source_id, a_k, a_k_err) -> None:
    """Write cleaned extinctions [N] (mag) by Gaia source id to an .npz (no pickle)."""
    np.savez(Path(path), source_id=np.asarray(source_id, np.int64), a_k=a_k, a_k_err=a_k_err)


def load_extinction(path) -> dict:
    """{source_id: (a_k, a_k_err)} from ``save_extinction``'s file."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            ids, a_k, err = data["source_id"], data["a_k"], data["a_k_err"]
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path} is not a cleaned-extinction file ({error})") from error
    return dict(zip(ids.tolist(), zip(a_k.tolist(), err.tolist(), strict=True), strict=True))


def default_extinction_path() -> Path:
    """The shipped model's cleaned A_K of its training stars."""
    return shipped_data_path("foundation_model_extinction.npz")
