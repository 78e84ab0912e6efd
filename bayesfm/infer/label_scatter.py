"""The label scatter between the emulator's labels and a survey's, measured on posteriors.

A survey's label and the emulator label that best explains the same star's spectrum differ
by more than either's error: the survey's pipeline and the emulator see the star through
different models. Put into the likelihood (as a label-space term of the tokens' covariance,
``NoiseModel.label_error``), that difference discounts the spectrum along the label
directions and lets the prior pull the posterior away from both (docs/inference.md). Here
it is a separate step: the posterior of the emulator's labels is left as the data make it,
and each draw gets an offset N(0, s^2) (``NoiseModel.scatter_labels``), with s per label
the spread that makes

    z = (posterior mode - survey label) / sqrt(posterior variance + survey error^2 + s^2)

have a robust standard deviation of one on calibration stars (Laplace posteriors). The
offsets grow with a star's XP noise (docs/inference.md), so ``fit_label_scatter_by_noise``
fits one s per class of flux noise level (quantiles of the calibration stars' levels).
"""

import dataclasses

import jax
import numpy as np

from bayesfm.common.devices import pad_leading
from bayesfm.common.metrics import extra_spread
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.mode import laplace_proposal
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["fit_label_scatter", "fit_label_scatter_by_noise", "laplace_posteriors"]

_BATCH = 64  # catalogue-sized batches: one compiled shape, bounded memory


def fit_label_scatter(
    setup: StarInference, stars: StarTokens, reference, reference_error
) -> np.ndarray:
    """s [5]: per label, the scatter of ``reference`` [N, 5] about the posteriors of
    ``stars`` under ``setup`` (without its own label scatter) beyond the posterior widths
    and ``reference_error`` [N, 5] (NaN: no reference; 0 for a label without any)."""
    plain = dataclasses.replace(setup, noise=dataclasses.replace(setup.noise, label_scatter=None))
    rows, mode, sd = laplace_posteriors(plain, stars)
    reference, reference_error = reference[rows], reference_error[rows]
    scatter = np.zeros(mode.shape[1])
    for i in range(mode.shape[1]):
        ok = np.isfinite(reference[:, i]) & np.isfinite(reference_error[:, i])
        ok &= np.isfinite(mode[:, i]) & np.isfinite(sd[:, i])
        if ok.any():
            offset = mode[ok, i] - reference[ok, i]
            scatter[i] = extra_spread(offset, sd[ok, i] ** 2 + reference_error[ok, i] ** 2)
    return scatter


def fit_label_scatter_by_noise(
    setup: StarInference, stars: StarTokens, reference, reference_error, classes: int = 4
):
    """(edges, s [classes, 5]): ``fit_label_scatter`` in each of ``classes`` equal-count
    classes of the stars' flux noise level (``NoiseModel.flux_noise_level``), and the
    ``classes - 1`` levels between them."""
    prepared = prepare_stars(setup, stars)
    level = np.full(len(stars), np.nan)
    level[prepared.rows] = setup.noise.flux_noise_level(prepared.data)
    edges = np.nanquantile(level, np.arange(1, classes) / classes)
    group = np.digitize(np.nan_to_num(level, nan=np.inf), edges)
    scatter = []
    for c in range(classes):
        rows = np.flatnonzero(group == c)
        scatter.append(
            fit_label_scatter(setup, stars.take(rows), reference[rows], reference_error[rows])
        )
    return tuple(float(e) for e in edges), np.stack(scatter)


def laplace_posteriors(setup: StarInference, stars: StarTokens):
    """(rows of ``stars`` with usable tokens, posterior modes [n, 5] and sds [n, 5],
    physical) of the Laplace approximation at each star's posterior mode."""
    prepared = prepare_stars(setup, stars)
    scaling = setup.scaling
    z_mean = scaling.normalise(prepared.start)
    z_sigma = prepared.start_sigma / scaling.scale
    config, n = ImportanceConfig(inflation=1.0), len(z_mean)
    modes, chols = [], []
    for start in range(0, n, _BATCH):
        rows = slice(start, min(start + _BATCH, n))
        batch = jax.tree_util.tree_map(
            lambda a, rows=rows: a[rows], (prepared.data, z_mean, z_sigma)
        )
        loc, chol = laplace_proposal(setup, *pad_leading(batch, _BATCH), config)
        modes.append(loc[: rows.stop - start])
        chols.append(chol[: rows.stop - start])
    mode, chol = np.concatenate(modes), np.concatenate(chols)
    sd = np.sqrt(np.einsum("nij,nij->ni", chol, chol)) * scaling.scale
    return np.asarray(prepared.rows), scaling.physical(mode), sd
