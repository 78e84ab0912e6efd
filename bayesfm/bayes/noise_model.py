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
    spectrum, added to every posterior draw of the labels (``scatter_labels``).
    """

    names: tuple
    error_scale: np.ndarray
    correlation: np.ndarray
    inflation: float = 1.0
    label_error: np.ndarray | None = None
    tail_dof: float | None = None
    label_error_split: tuple | None = None
    label_scatter: np.ndarray | None = None

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
        scatter = self.label_scatter
        if scatter is not None and (np.ndim(scatter) != 1 or not np.all(np.asarray(scatter) >= 0)):
            raise DataError(
                f"noise model's label_scatter must be one value >= 0 per input: {scatter}"
            )

    def label_error_at(self, labels):
        """e [n_in] for a star whose anchor is ``labels`` [n_in] (physical)."""
        error = jnp.asarray(self.label_error)
        if self.label_error_split is None:
            return error
        index, value = self.label_error_split
        return jnp.where(labels[index] < value, error[0], error[1])

    def scatter_labels(self, draws, key) -> np.ndarray:
        """Label draws [..., n_in] (physical) on the survey's scale: each plus an independent
        N(0, s^2) offset (the draws themselves where there is no label scatter)."""
        draws = np.asarray(draws, np.float32)
        if self.label_scatter is None:
            return draws
        offsets = jax.random.normal(key, draws.shape) * jnp.asarray(self.label_scatter)
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
