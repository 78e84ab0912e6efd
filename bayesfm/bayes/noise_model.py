"""The likelihood's noise model: error scales, residual correlation, label-space error and
tails, fitted on validation stars (``bayesfm.bayes.noise_fit``); ``bayesfm.bayes.likelihood``
says how they make up each star's covariance. Its label scatter relates the emulator's
labels to the survey's (``NoiseModel.scatter_labels``)."""

from dataclasses import dataclass, replace
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.jsonio import from_json, load_json, save_json

__all__ = ["NoiseModel", "default_noise_path", "scatter_side", "scatter_units"]

# Student-t label scatter offsets beyond this many s are drawn again, by default: the tails
# may be as heavy as a Cauchy's (survey labels have outliers) while a draw's mean and sd exist
# (validation/label_scatter_tails.py chose it)
SCATTER_TRUNCATION = 20.0


@dataclass(frozen=True)
class NoiseModel:
    """Per-token error scales c [K], residual correlation R [K, K], the emulator's error in
    label space e [n_in] (physical units of its inputs; None: no such term; [2, n_in] with
    ``label_error_split`` = (input index, value): the rows for stars below and at or above
    that value of that input), a global inflation of every token's error (1: none;
    ``validation/fit_inflation.py`` measures it), the Student-t degrees of freedom nu of
    the tokens (None: Gaussian) and the label scatter s [n_in] (physical units; None: none):
    the spread of a survey's labels about the emulator labels that best describe a star's
    spectrum, added to every posterior draw of the labels (``scatter_labels``). With
    ``label_scatter_edges`` (B - 1 increasing values of a star's ``flux_noise_level``) s has
    one row per class of flux noise [B, n_in]: the offsets grow with the XP noise. With
    ``label_scatter_split`` = (input index, value) s has a leading axis of two: draws below
    that value of that input (giants, for logg) take the first, the others the second; n_in
    such pairs split each input's scatter on its own (alpha_m's on fe_h, say). With
    ``label_scatter_dof`` the offsets are Student-t with that many degrees of freedom (one
    for every input, or one per input) and scale s, truncated at
    ``label_scatter_truncation`` s (None: Gaussian with sd s): the survey's labels have
    heavier tails.
    """

    names: tuple
    error_scale: np.ndarray
    correlation: np.ndarray
    inflation: float = 1.0
    label_error: np.ndarray | None = None
    tail_dof: float | None = None
    label_error_split: tuple | None = None
    label_scatter: np.ndarray | None = None
    label_scatter_edges: tuple | None = None
    label_scatter_split: tuple | None = None
    label_scatter_dof: float | tuple | None = None
    label_scatter_truncation: float = SCATTER_TRUNCATION

    @property
    def total_scale(self) -> np.ndarray:
        """c_k x inflation [K]."""
        return self.error_scale * self.inflation

    def __post_init__(self):
        k = len(self.names)
        if self.error_scale.shape != (k,) or self.correlation.shape != (k, k):
            raise DataError(f"noise model needs {k} error scales and a {k}x{k} correlation matrix")
        rows = None if self.label_error is None else np.shape(self.label_error)[:-1]
        if rows not in (None, () if self.label_error_split is None else (2,)):
            raise DataError(
                "noise model's label_error needs one row, or two with a label_error_split; "
                f"got shape {np.shape(self.label_error)} and split {self.label_error_split}"
            )
        self._check_label_scatter()

    def _check_label_scatter(self) -> None:
        scatter, edges = self.label_scatter, self.label_scatter_edges
        if scatter is None:
            return
        shape = np.shape(scatter)
        expected = (2,) * (self.label_scatter_split is not None)
        expected += () if edges is None else (len(edges) + 1,)
        if shape[:-1] != expected or not np.all(np.asarray(scatter) >= 0):
            raise DataError(
                f"noise model's label_scatter has shape {shape}: it needs values >= 0, one per "
                f"input, in rows {expected} (two with a label_scatter_split, one per class of "
                "flux noise with label_scatter_edges)"
            )
        if edges is not None and np.any(np.diff(edges) <= 0):
            raise DataError(f"noise model's label_scatter_edges must increase: {edges}")
        dof = self.label_scatter_dof
        if dof is not None and (
            np.ndim(dof) not in (0, 1)
            or np.size(dof) not in (1, shape[-1])
            or not np.all(np.asarray(dof) > 0)
        ):
            raise DataError(
                f"noise model's label_scatter_dof must be > 0, one value or one per input: {dof}"
            )
        split = self.label_scatter_split
        if split is not None and np.shape(split) not in ((2,), (shape[-1], 2)):
            raise DataError(
                "noise model's label_scatter_split must be one (input index, value) pair or "
                f"one per input: {split}"
            )
        if not self.label_scatter_truncation >= 1:
            raise DataError(
                "noise model's label_scatter_truncation must be at least 1 (offsets beyond it "
                f"are drawn again): {self.label_scatter_truncation}"
            )

    def label_error_at(self, labels):
        """e [n_in] for a star whose anchor is ``labels`` [n_in] (physical)."""
        error = jnp.asarray(self.label_error)
        if self.label_error_split is None:
            return error
        index, value = self.label_error_split
        return jnp.where(labels[index] < value, error[0], error[1])

    def flux_noise_level(self, data) -> np.ndarray:
        """Each star's XP noise [...]: the median error / |value| of its observed flux tokens
        (``data``: a ``StarData``, one star or stacked; NaN for a star without any)."""
        flux = np.array([name.startswith("xp_") for name in self.names])
        values, errors = np.asarray(data.values), np.asarray(data.errors)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.asarray(data.mask) & flux, errors / np.abs(values), np.nan)
        usable = np.isfinite(ratio).any(axis=-1)
        level = np.full(usable.shape, np.nan)
        level[usable] = np.nanmedian(ratio[usable], axis=-1)
        return level

    def scatter_for(self, draws, noise_level=None) -> np.ndarray:
        """s [..., n_in] for each label draw [..., n_in] of stars of flux noise level
        ``noise_level`` (broadcast against ``draws[..., 0]``; the noisiest class where NaN;
        not needed without classes)."""
        draws = np.asarray(draws)
        table = np.asarray(self.label_scatter)
        table = table if self.label_scatter_split is not None else table[None]
        table = table if self.label_scatter_edges is not None else table[:, None]
        if self.label_scatter_edges is None:
            noise_class = np.zeros(draws.shape[:-1], int)
        elif noise_level is None:
            raise DataError(
                "this noise model's label scatter depends on each star's flux noise level; "
                "pass noise_level (NoiseModel.flux_noise_level)"
            )
        else:
            level = np.nan_to_num(np.asarray(noise_level, float), nan=np.inf)
            noise_class = np.digitize(level, self.label_scatter_edges)
            noise_class = np.broadcast_to(noise_class, draws.shape[:-1])
        side = scatter_side(self.label_scatter_split, draws)
        return np.take_along_axis(table[:, noise_class], side[None], axis=0)[0]

    def without_label_scatter(self) -> "NoiseModel":
        """This noise model with no label scatter: draws stay the emulator's labels."""
        return replace(
            self,
            label_scatter=None,
            label_scatter_edges=None,
            label_scatter_split=None,
            label_scatter_dof=None,
        )

    def scatter_labels(self, draws, key, noise_level=None) -> np.ndarray:
        """Label draws [..., n_in] (physical) on the survey's scale: each plus an independent
        offset of scale s (``scatter_for``; the draws themselves without a label scatter)."""
        draws = np.asarray(draws, np.float32)
        if self.label_scatter is None:
            return draws
        scatter = self.scatter_for(draws, noise_level)
        # numpy, seeded by the key: jax's Student-t took 0.6 s for a 64-star chunk's draws
        rng = np.random.default_rng(np.asarray(key))
        unit = scatter_units(
            rng, self.label_scatter_dof, draws.shape, self.label_scatter_truncation
        )
        return draws + unit.astype(np.float32) * scatter.astype(np.float32)

    @classmethod
    def independent(cls, names) -> "NoiseModel":
        """No rescaling and no correlation: tokens treated as independent."""
        return cls(tuple(names), np.ones(len(names)), np.eye(len(names)))

    def save(self, path) -> None:
        save_json(path, self)

    @classmethod
    def load(cls, path=None) -> "NoiseModel":
        path = Path(path) if path is not None else default_noise_path()
        return from_json(cls, load_json(path, "a noise model"), f"noise model {path}")


def scatter_side(split, labels) -> np.ndarray:
    """Which row of a label scatter ``split`` (``NoiseModel.label_scatter_split``) each input
    of ``labels`` [..., n_in] takes: 0 below the split's value, 1 at or above it (all 0
    without a split) [..., n_in]."""
    labels = np.asarray(labels)
    if split is None:
        return np.zeros(labels.shape, int)
    split = np.broadcast_to(np.asarray(split, float), (labels.shape[-1], 2))
    index, value = split[:, 0].astype(int), split[:, 1]
    return (labels[..., index] >= value).astype(int)


def scatter_units(rng, dof, shape, truncation=SCATTER_TRUNCATION) -> np.ndarray:
    """Unit offsets of ``shape``: standard normal (``dof`` None), or Student-t with ``dof``
    (broadcast against ``shape``) truncated at +-``truncation``."""
    if dof is None:
        return rng.standard_normal(shape)
    dof = np.broadcast_to(np.asarray(dof, float), shape)
    unit = rng.standard_t(dof)
    outside = np.abs(unit) > truncation
    while outside.any():
        unit[outside] = rng.standard_t(dof[outside])
        outside = np.abs(unit) > truncation
    return unit


def default_noise_path() -> Path:
    return shipped_data_path("noise_model.json")
