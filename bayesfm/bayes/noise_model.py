"""The likelihood's noise model: error scales, residual correlation, label-space error and
tails, fitted on validation stars (``bayesfm.bayes.noise_fit``); ``bayesfm.bayes.likelihood``
says how they make up each star's covariance. Its label scatter relates the emulator's
labels to the survey's (``NoiseModel.scatter_labels``)."""

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.jsonio import from_json, load_json, save_json

__all__ = ["NoiseModel", "default_noise_path"]


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
    ``label_scatter_edges`` (B - 1 increasing values of a star's ``flux_noise_level``) s is
    [B, n_in], one row per class of flux noise: the offsets grow with the XP noise.
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
        rows = 1 if edges is None else len(edges) + 1
        if np.ndim(scatter) != (1 if edges is None else 2) or not np.all(np.asarray(scatter) >= 0):
            raise DataError(
                "noise model's label_scatter must be one value >= 0 per input (one row per "
                f"class of flux noise with label_scatter_edges): {scatter}"
            )
        if edges is not None and (len(scatter) != rows or np.any(np.diff(edges) <= 0)):
            raise DataError(
                f"noise model's label_scatter has {len(scatter)} rows for the {rows} classes "
                f"of its increasing label_scatter_edges {edges}"
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

    def scatter_for(self, noise_level=None) -> np.ndarray:
        """s [..., n_in] for stars of flux noise level ``noise_level`` [...] (the noisiest
        class where NaN; not needed without classes)."""
        if self.label_scatter_edges is None:
            return np.asarray(self.label_scatter)
        if noise_level is None:
            raise DataError(
                "this noise model's label scatter depends on each star's flux noise level; "
                "pass noise_level (NoiseModel.flux_noise_level)"
            )
        level = np.nan_to_num(np.asarray(noise_level, float), nan=np.inf)
        return np.asarray(self.label_scatter)[np.digitize(level, self.label_scatter_edges)]

    def scatter_labels(self, draws, key, noise_level=None) -> np.ndarray:
        """Label draws [..., n_in] (physical) on the survey's scale: each plus an independent
        N(0, s^2) offset (the draws themselves where there is no label scatter); s per star
        by ``noise_level``, shaped to broadcast against ``draws[..., 0]``."""
        draws = np.asarray(draws, np.float32)
        if self.label_scatter is None:
            return draws
        scatter = self.scatter_for(noise_level)
        offsets = jax.random.normal(key, draws.shape) * jnp.asarray(scatter)
        return draws + np.asarray(offsets, np.float32)

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


def default_noise_path() -> Path:
    return shipped_data_path("noise_model.json")
