"""Priors over a star's latent labels and extinction, all explicit and swappable.

Every prior is a NumPyro distribution over the physical vector
``x = (teff [K], logg [dex], fe_h [dex], alpha_m [dex], a_k [mag])``:
- ``GaussianMixturePrior``: the default, learned from the train-split labels (a full-
  covariance Gaussian mixture, fitted by EM, shipped as JSON next to the weights); it
  keeps the sampler where the emulator was trained;
- ``uniform_box_prior``: independent uniform ranges;
- any user-supplied NumPyro distribution with event shape (5,).
"""

from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.jsonio import from_json, load_json, save_json
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = [
    "GaussianMixturePrior",
    "fit_gaussian_mixture",
    "uniform_box_prior",
    "default_prior_path",
]


@dataclass(frozen=True)
class GaussianMixturePrior:
    """A Gaussian mixture over ``names`` (physical units).

    Attributes:
        names: The labels, in order [D].
        weights: Component weights [M].
        means: Component means [M, D].
        covariances: Component covariances [M, D, D].
    """

    names: tuple
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def distribution(self) -> dist.Distribution:
        return dist.MixtureSameFamily(
            dist.Categorical(probs=jnp.asarray(self.weights)),
            dist.MultivariateNormal(
                jnp.asarray(self.means), covariance_matrix=jnp.asarray(self.covariances)
            ),
        )

    def mapped(self, name: str, slope: float, intercept: float) -> "GaussianMixturePrior":
        """The same prior with label ``name`` mapped to ``intercept + slope x name``."""
        factor = np.ones(len(self.names))
        factor[self.names.index(name)] = slope
        shift = np.zeros(len(self.names))
        shift[self.names.index(name)] = intercept
        return GaussianMixturePrior(
            self.names,
            self.weights,
            np.asarray(self.means) * factor + shift,
            np.asarray(self.covariances) * np.outer(factor, factor)[None],
        )

    def save(self, path) -> None:
        save_json(path, self)

    @classmethod
    def load(cls, path=None) -> "GaussianMixturePrior":
        path = Path(path) if path is not None else default_prior_path()
        prior = from_json(cls, load_json(path, "a Gaussian-mixture prior"), f"prior {path}")
        if prior.names != LABEL_INPUTS:
            raise DataError(
                f"{path}: prior is over {prior.names}, bayesfm models need {LABEL_INPUTS}"
            )
        return prior


def fit_gaussian_mixture(
    x, n_components=12, n_iter=200, seed=0, names=LABEL_INPUTS
) -> GaussianMixturePrior:
    """Fit a full-covariance Gaussian mixture to ``x`` [N, D] (physical units) by EM."""
    x = np.asarray(x, float)
    loc, scale = x.mean(axis=0), x.std(axis=0)
    z = (x - loc) / scale
    rng = np.random.default_rng(seed)
    n, d = z.shape
    means = z[rng.choice(n, n_components, replace=False)]
    covs = np.repeat(np.eye(d)[None], n_components, axis=0)
    weights = np.full(n_components, 1.0 / n_components)
    for _ in range(n_iter):
        log_resp = np.stack(
            [_log_normal(z, m, c) for m, c in zip(means, covs, strict=True)], axis=1
        )
        log_resp += np.log(weights)
        log_resp -= np.logaddexp.reduce(log_resp, axis=1, keepdims=True)
        resp = np.exp(log_resp)
        counts = resp.sum(axis=0) + 1e-10
        weights = counts / n
        means = resp.T @ z / counts[:, None]
        for k in range(n_components):
            diff = z - means[k]
            covs[k] = (resp[:, k, None] * diff).T @ diff / counts[k] + 1e-4 * np.eye(d)
    return GaussianMixturePrior(
        tuple(names),
        weights,
        means * scale + loc,
        covs * np.outer(scale, scale)[None],
    )


def _log_normal(z, mean, cov):
    chol = np.linalg.cholesky(cov)
    solved = np.linalg.solve(chol, (z - mean).T)
    return (
        -0.5 * np.sum(solved**2, axis=0)
        - np.log(np.diag(chol)).sum()
        - 0.5 * len(mean) * np.log(2 * np.pi)
    )


def uniform_box_prior(low, high) -> dist.Distribution:
    """Independent uniform priors between ``low`` and ``high`` [5] (physical units)."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    if low.shape != (len(LABEL_INPUTS),) or high.shape != low.shape:
        raise DataError(f"uniform box needs 5 lower and 5 upper bounds for {LABEL_INPUTS}")
    if not np.all(high > low):
        raise DataError(f"uniform box bounds must satisfy low < high; got low={low}, high={high}")
    return dist.Uniform(jnp.asarray(low), jnp.asarray(high)).to_event(1)


def default_prior_path() -> Path:
    return shipped_data_path("label_prior.json")
