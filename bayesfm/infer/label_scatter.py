"""The label scatter between the emulator's labels and a survey's, measured on posteriors.

A survey's label and the emulator label that best explains the same star's spectrum differ
by more than either's error: the survey's pipeline and the emulator see the star through
different models. Put into the likelihood (as a label-space term of the tokens' covariance,
``NoiseModel.label_error``), that difference discounts the spectrum along the label
directions and lets the prior pull the posterior away from both (docs/inference.md). Here
it is a separate step: the posterior of the emulator's labels is left as the data make it,
and each draw gets an offset of scale s (``NoiseModel.scatter_labels``), with s per label
the one that makes the survey's labels fall inside the central 68% and 95% intervals of

    survey label ~ posterior draw + N(0, survey error^2) + s x offset

as often as they say (the best compromise of the two) on calibration stars, with the
posteriors the catalogue reports (its importance draws: a Laplace approximation is 15-25%
narrower and would leave s too wide). The offsets grow with a star's XP noise, differ
between giants and dwarfs and have heavier tails than a Gaussian (docs/inference.md), so
``fit_label_scatter`` fits one s per class of flux noise level (quantiles of the
calibration stars' levels) and side of a label split, with Student-t offsets.
"""

import dataclasses

import jax
import numpy as np
from tqdm.auto import tqdm

from bayesfm.bayes.noise_model import SCATTER_TRUNCATION, NoiseModel, scatter_side, scatter_units
from bayesfm.common.devices import pad_leading
from bayesfm.common.metrics import robust_sigma
from bayesfm.common.stall_watch import watch_on_cpu
from bayesfm.infer.importance import run_importance
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.tokens.star_tokens import StarTokens

__all__ = [
    "fit_label_scatter",
    "importance_posteriors",
    "scatter_for_coverage",
    "scatter_from_draws",
]

_BATCH = 64  # catalogue-sized batches: one compiled shape, bounded memory
_GRID = 61  # trial values of s, from 0 to three robust sigmas of the offsets
_STALL_SECONDS = 300.0  # a batch never idles this long unless XLA has stalled


def fit_label_scatter(
    setup: StarInference,
    stars: StarTokens,
    reference,
    reference_error,
    classes: int = 1,
    split: tuple | None = None,
    dof: float | tuple | None = None,
    key=None,
    progress: bool = False,
):
    """The setup's noise model with the label scatter that ``reference`` [N, 5] (errors
    ``reference_error``; NaN: no reference) needs about the posteriors of ``stars`` under it
    (without its own scatter; ``key``: the importance sampler's, default seed 0); the
    classes as for ``scatter_from_draws``. ``progress``: a progress bar over the stars."""
    key = jax.random.PRNGKey(0) if key is None else key
    plain = setup.noise.without_label_scatter()
    setup = dataclasses.replace(setup, noise=plain)
    prepared = prepare_stars(setup, stars)
    draws = importance_posteriors(setup, prepared, key, progress)
    level, rows = plain.flux_noise_level(prepared.data), prepared.rows
    return scatter_from_draws(
        plain, draws, level, reference[rows], reference_error[rows], classes, split, dof
    )


def scatter_from_draws(
    noise: NoiseModel,
    draws,
    level,
    reference,
    reference_error,
    classes: int = 1,
    split: tuple | None = None,
    dof: float | tuple | None = None,
    truncation: float = SCATTER_TRUNCATION,
) -> NoiseModel:
    """``noise`` with the label scatter fitted to posterior ``draws`` [n, S, 5] (physical)
    of stars of flux noise level ``level`` [n]: one s per class of ``classes`` equal-count
    classes of level and, with ``split`` (input index, value of the posterior median; or one
    such pair per input), per side of it; Student-t offsets with ``dof`` degrees of freedom,
    truncated at ``truncation`` (None: Gaussian), or with ``dof`` a tuple of candidates, per
    label the candidate whose offsets bring that label's 68% and 95% coverage closest to
    nominal over all classes (the tails' weight is a property of each survey label)."""
    edges = np.quantile(level, np.arange(1, classes) / classes) if classes > 1 else None
    noise_class = np.zeros(len(draws), int) if edges is None else np.digitize(level, edges)
    if split is not None:
        split = tuple(split) if np.ndim(split) == 1 else tuple(map(tuple, split))
    side = scatter_side(split, np.median(draws, axis=1))
    candidates = dof if isinstance(dof, tuple) else (dof,)
    shape = (2 if split else 1, classes, draws.shape[-1])
    fits = [
        _scatter_table(
            draws, side, noise_class, (reference, reference_error), nu, truncation, shape
        )
        for nu in candidates
    ]
    choice = np.argmin([miss for _, miss in fits], axis=0)  # per label
    table = np.stack([fits[c][0][..., i] for i, c in enumerate(choice)], axis=-1)
    table = table if split else table[0]
    chosen = tuple(candidates[c] for c in choice) if len(candidates) > 1 else dof
    return dataclasses.replace(
        noise,
        label_scatter=table if edges is not None else table[..., 0, :],
        label_scatter_edges=None if edges is None else tuple(float(e) for e in edges),
        label_scatter_split=split,
        label_scatter_dof=chosen,
        label_scatter_truncation=truncation,
    )


def _scatter_table(draws, side, noise_class, references, dof, truncation, shape):
    """s [sides, classes, 5] (``shape``) for offsets with ``dof`` and ``truncation``, and
    per label the coverage misses summed over the classes, each weighted by its number of
    stars [5]; ``side`` [n, 5]: each star's side of the split, per label; ``references``:
    (labels, errors)."""
    (reference, reference_error), table = references, np.zeros(shape)
    miss = np.zeros(shape[-1])
    for row, column in np.ndindex(table.shape[:2]):
        for i in range(draws.shape[-1]):
            group = (side[:, i] == row) & (noise_class == column)
            s, group_miss = scatter_for_coverage(
                draws[group, :, i],
                reference[group, i],
                reference_error[group, i],
                dof,
                truncation,
            )
            table[row, column, i] = s
            miss[i] += group.sum() * group_miss
    return table, miss


def scatter_for_coverage(
    draws, reference, reference_error, dof=None, truncation=SCATTER_TRUNCATION, seed=0
) -> tuple:
    """(s, its miss): s >= 0 whose predictive, each of ``draws`` [n, S] + N(0,
    ``reference_error``^2) + s x (Student-t with ``dof`` truncated at ``truncation``, or
    normal), puts ``reference`` [n] (NaN: none) inside its central 68% and 95% intervals
    closest to those fractions (least squares), and that sum of squares; (0, 0) without any
    reference."""
    ok = np.isfinite(reference) & np.isfinite(reference_error)
    draws, reference, error = draws[ok], reference[ok], reference_error[ok]
    if reference.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    size = draws.shape[1]
    unit = scatter_units(rng, dof, size, truncation)
    base = draws + error[:, None] * rng.standard_normal(size)

    def miss(s):
        low68, high68, low95, high95 = np.quantile(
            base + s * unit, [0.16, 0.84, 0.025, 0.975], axis=1
        )
        inside68 = np.mean((reference > low68) & (reference < high68))
        inside95 = np.mean((reference > low95) & (reference < high95))
        return (inside68 - 0.68) ** 2 + (inside95 - 0.95) ** 2

    grid = np.linspace(0.0, 3 * robust_sigma(reference - np.median(draws, axis=1)), _GRID)
    misses = [miss(s) for s in grid]
    best = int(np.argmin(misses))
    return float(grid[best]), float(misses[best])


def importance_posteriors(setup: StarInference, prepared, key, progress=False):
    """Posterior draws [n, S, 5] (physical) of stars prepared by ``prepare_stars``: the
    catalogue's importance sampler with its default settings, in catalogue-sized batches."""
    scaling = setup.scaling
    z_mean = scaling.normalise(prepared.start)
    z_sigma = prepared.start_sigma / scaling.scale
    n, draws = len(z_mean), []
    bar = tqdm(total=n, unit="star", desc="importance sampling", disable=not progress)
    hint = "Nothing was saved; run the same command again."
    for start in range(0, n, _BATCH):
        rows = slice(start, min(start + _BATCH, n))
        batch = jax.tree_util.tree_map(
            lambda a, rows=rows: a[rows], (prepared.data, z_mean, z_sigma)
        )
        batch_key = jax.random.fold_in(key, start)
        with watch_on_cpu(_STALL_SECONDS, "importance sampling for the label scatter", hint):
            result = run_importance(setup, *pad_leading(batch, _BATCH), batch_key)
        draws.append(scaling.physical(result.z[: rows.stop - start]))
        bar.update(rows.stop - start)
    bar.close()
    return np.concatenate(draws)
