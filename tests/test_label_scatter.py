"""The label scatter: offsets on every posterior draw, and its fit on Laplace posteriors."""

import dataclasses

import arviz as az
import jax
import numpy as np
import pytest

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.catalogue.chunk import fit_chunk
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.errors import DataError
from bayesfm.common.metrics import robust_sigma
from bayesfm.infer.idata import finish
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.label_scatter import (
    fit_label_scatter,
    fit_label_scatter_by_noise,
    laplace_posteriors,
)
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.tokens.labels import LABEL_INPUTS

SCATTER = np.array([100.0, 0.2, 0.1, 0.0, 0.03])


def _with_scatter(setup, scatter):
    noise = dataclasses.replace(setup.noise, label_scatter=scatter, label_scatter_edges=None)
    return dataclasses.replace(setup, noise=noise)


def test_scatter_labels_adds_offsets_of_the_given_spread_and_nothing_without_one():
    noise = NoiseModel.independent(["a", "b"])
    draws = np.ones((20000, 5), np.float32)
    key = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(noise.scatter_labels(draws, key), draws)
    scattered = dataclasses.replace(noise, label_scatter=SCATTER).scatter_labels(draws, key)
    np.testing.assert_allclose(scattered.std(axis=0), SCATTER, rtol=0.03)
    np.testing.assert_allclose(scattered.mean(axis=0), 1.0, atol=0.05 * SCATTER.max())


def _noise_classes():
    names = ("xp_400", "xp_500", "bp_rp")
    scatter = np.stack([SCATTER, 3 * SCATTER])
    return NoiseModel.independent(names), scatter


def test_the_flux_noise_level_is_the_median_relative_error_of_the_observed_flux_tokens():
    noise, _ = _noise_classes()
    data = type("Data", (), {})()
    data.values = np.array([[10.0, 20.0, 1.0], [10.0, 20.0, 1.0], [10.0, 0.0, 1.0]])
    data.errors = np.array([[0.1, 0.4, 0.5], [0.1, 0.4, 0.5], [1.0, 1.0, 0.01]])
    data.mask = np.array([[True, True, True], [True, False, True], [False, False, True]])
    level = noise.flux_noise_level(data)
    np.testing.assert_allclose(level[:2], [0.015, 0.01])  # the colour token does not count
    assert np.isnan(level[2])  # no observed flux token


def test_classes_of_flux_noise_get_their_own_scatter_and_need_the_level():
    plain, scatter = _noise_classes()
    noise = dataclasses.replace(plain, label_scatter=scatter, label_scatter_edges=(0.01,))
    draws = np.ones((3, 20000, 5), np.float32)
    level = np.array([0.005, 0.02, np.nan])[:, None]
    scattered = noise.scatter_labels(draws, jax.random.PRNGKey(0), level)
    expected = np.stack([SCATTER, 3 * SCATTER, 3 * SCATTER])  # NaN: the noisiest class
    np.testing.assert_allclose(scattered.std(axis=1), expected, rtol=0.03)
    with pytest.raises(DataError, match="noise_level"):
        noise.scatter_labels(draws, jax.random.PRNGKey(0))


def test_label_scatter_classes_that_do_not_match_their_edges_are_refused():
    plain, scatter = _noise_classes()
    with pytest.raises(DataError, match="rows"):
        dataclasses.replace(plain, label_scatter=scatter, label_scatter_edges=(0.01, 0.02))
    with pytest.raises(DataError, match="label_scatter"):
        dataclasses.replace(plain, label_scatter=scatter)


def test_label_scatter_classes_survive_a_save_and_load(tmp_path):
    plain, scatter = _noise_classes()
    noise = dataclasses.replace(plain, label_scatter=scatter, label_scatter_edges=(0.01,))
    noise.save(tmp_path / "noise.json")
    loaded = NoiseModel.load(tmp_path / "noise.json")
    np.testing.assert_array_equal(loaded.label_scatter, scatter)
    assert loaded.label_scatter_edges == (0.01,)


def test_a_negative_label_scatter_is_refused():
    with pytest.raises(DataError, match="label_scatter"):
        NoiseModel(("a",), np.ones(1), np.eye(1), label_scatter=np.array([1.0, -0.1]))


def test_catalogue_draws_differ_from_the_plain_ones_by_the_scatter(tiny_model_path, example_stars):
    setup = StarInference.default(tiny_model_path)
    stars = example_stars.tokens.take(np.arange(4))
    config = CatalogueConfig(
        method="importance",
        save_draws=True,
        importance=ImportanceConfig(num_draws=200, newton_steps=4, refinements=0, num_keep=400),
    )
    plain = fit_chunk(_with_scatter(setup, None), stars, config, 0).draws
    scattered = fit_chunk(_with_scatter(setup, SCATTER), stars, config, 0).draws
    offsets = (scattered - plain).reshape(-1, 5)
    offsets = offsets[np.isfinite(offsets).all(axis=1)]  # draw slots a star did not fill
    assert len(offsets) >= 1000
    np.testing.assert_allclose(offsets.std(axis=0), SCATTER, rtol=0.1)


def test_single_star_posteriors_get_the_scatter_on_their_label_sites(example_stars):
    draws = {name: np.zeros((2, 3000)) for name in LABEL_INPUTS}
    idata = az.from_dict(posterior=draws, observed_data={"obs": np.zeros(3)})
    data = type(
        "Data", (), {"mask": np.ones(3, bool), "values": np.ones(3), "errors": np.ones(3)}
    )()
    noise = dataclasses.replace(NoiseModel.independent(["a"]), label_scatter=SCATTER)
    idata = finish(idata, data, 1, "nuts", 1.0, noise, jax.random.PRNGKey(1))
    spread = [float(idata.posterior[name].std()) for name in LABEL_INPUTS]
    np.testing.assert_allclose(spread, SCATTER, rtol=0.05)


@pytest.fixture(scope="module")
def shipped_posteriors(example_stars):
    setup = StarInference.default()
    stars = example_stars.tokens.take(np.tile(np.arange(10), 6))
    rows, mode, sd = laplace_posteriors(_with_scatter(setup, None), stars)
    return setup, stars.take(rows), mode, sd


def _references(mode, sd, spread, seed):
    reference = mode + spread * sd * np.random.default_rng(seed).standard_normal(mode.shape)
    reference[:, 4] = np.nan  # no A_K reference: no scatter for it
    return reference


def test_references_spread_wider_than_the_posteriors_give_a_scatter_that_makes_z_unit(
    shipped_posteriors,
):
    setup, stars, mode, sd = shipped_posteriors
    reference, error = _references(mode, sd, 2.5, seed=1), np.zeros_like(mode)
    scatter = fit_label_scatter(setup, stars, reference, error)
    assert (scatter[:4] > 0).all() and scatter[4] == 0
    z = (mode - reference) / np.sqrt(sd**2 + scatter**2)
    np.testing.assert_allclose([robust_sigma(c) for c in z.T[:4]], 1.0, atol=0.02)


def test_noisier_stars_with_wider_reference_offsets_get_a_larger_scatter(shipped_posteriors):
    setup, stars, mode, sd = shipped_posteriors
    prepared = prepare_stars(setup, stars)
    level = setup.noise.flux_noise_level(prepared.data)
    noisy = level > np.median(level)
    spread = np.where(noisy, 4.0, 1.5)[:, None]
    reference = mode + spread * sd * np.random.default_rng(3).standard_normal(mode.shape)
    reference[:, 4] = np.nan
    edges, scatter = fit_label_scatter_by_noise(
        setup, stars, reference, np.zeros_like(mode), classes=2
    )
    assert len(edges) == 1 and scatter.shape == (2, 5)
    assert (scatter[1, :4] > scatter[0, :4]).all() and (scatter[:, 4] == 0).all()


def test_references_inside_the_posteriors_give_no_scatter(shipped_posteriors):
    setup, stars, mode, sd = shipped_posteriors
    reference = _references(mode, sd, 0.5, seed=2)
    np.testing.assert_array_equal(
        fit_label_scatter(setup, stars, reference, np.zeros_like(mode)), 0.0
    )
