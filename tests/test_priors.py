"""The label prior: the mixture fit recovers a known mixture, and saves and loads exactly."""

import jax
import numpy as np
import pytest

from bayesfm.bayes.priors import GaussianMixturePrior, fit_gaussian_mixture
from bayesfm.common.errors import DataError
from bayesfm.tokens.labels import LABEL_INPUTS


def _two_populations(rng, n=4000):
    """Giants and dwarfs in (teff, logg, fe_h, alpha_m, a_k), 30% / 70%."""
    giants = rng.multivariate_normal(
        [4700, 2.5, -0.3, 0.15, 0.2], np.diag([150, 0.3, 0.2, 0.05, 0.1]) ** 2, int(0.3 * n)
    )
    dwarfs = rng.multivariate_normal(
        [5800, 4.3, 0.0, 0.02, 0.05], np.diag([300, 0.15, 0.25, 0.03, 0.05]) ** 2, n - len(giants)
    )
    return np.vstack([giants, dwarfs])


def test_mixture_fit_recovers_weights_and_means_of_a_known_mixture(rng):
    prior = fit_gaussian_mixture(_two_populations(rng), n_components=2, seed=1)
    order = np.argsort(prior.means[:, 0])  # giants are the cooler component
    np.testing.assert_allclose(prior.weights[order], [0.3, 0.7], atol=0.02)
    np.testing.assert_allclose(prior.means[order, 0], [4700, 5800], atol=25)
    np.testing.assert_allclose(prior.means[order, 1], [2.5, 4.3], atol=0.03)
    sd = np.sqrt(np.diagonal(prior.covariances[order], axis1=1, axis2=2))
    np.testing.assert_allclose(sd[:, 0], [150, 300], rtol=0.1)
    # the distribution puts the mass where the stars are
    draws = np.asarray(prior.distribution().sample(jax.random.PRNGKey(0), (4000,)))
    assert abs(np.mean(draws[:, 1] < 3.5) - 0.3) < 0.03


def test_mixture_saves_and_loads_exactly_and_refuses_other_labels(rng, tmp_path):
    prior = fit_gaussian_mixture(_two_populations(rng, 500), n_components=3, n_iter=20)
    prior.save(tmp_path / "prior.json")
    loaded = GaussianMixturePrior.load(tmp_path / "prior.json")
    assert loaded.names == LABEL_INPUTS
    for field in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(prior, field))
    other = GaussianMixturePrior(
        ("teff",), prior.weights, prior.means[:, :1], prior.covariances[:, :1, :1]
    )
    other.save(tmp_path / "other.json")
    with pytest.raises(DataError, match="bayesfm models need"):
        GaussianMixturePrior.load(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text('{"names": ["teff"]')
    with pytest.raises(DataError, match="cannot read a Gaussian-mixture prior"):
        GaussianMixturePrior.load(tmp_path / "broken.json")
