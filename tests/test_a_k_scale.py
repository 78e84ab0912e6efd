"""A_K on ak_targ's scale: the emulator's input, the amortized labels and the prior."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.bayes.priors import GaussianMixturePrior
from bayesfm.common.errors import DataError
from bayesfm.model.a_k_scale import AKScale, calibrate_scale
from bayesfm.model.emulator import a_k_scale_of, make_emulator
from bayesfm.model.foundation_model import FoundationModel

SCALE = AKScale(slope=0.6, intercept=0.04)


def _on_scale(model, scale):
    bare = {k: v for k, v in model.info.items() if k not in ("extinction_law", "a_k_scale")}
    info = bare if scale is None else {**bare, "a_k_scale": scale.to_info()}
    return replace(model, info=info)


def test_the_emulator_takes_a_k_on_ak_targs_scale():
    model = FoundationModel.load()
    raw = make_emulator(_on_scale(model, None))
    emulator = make_emulator(_on_scale(model, SCALE))
    labels = jnp.array([4800.0, 2.5, -0.2, 0.1])
    for a_k in (0.0, 0.3):
        mean, sigma = emulator(jnp.append(labels, a_k))
        raw_mean, raw_sigma = raw(jnp.append(labels, (a_k - 0.04) / 0.6))
        np.testing.assert_allclose(mean, raw_mean, rtol=1e-5)
        np.testing.assert_allclose(sigma, raw_sigma, rtol=1e-5)
    transformer_scale = make_emulator(_on_scale(model, SCALE), extinction_law=False)
    np.testing.assert_allclose(
        transformer_scale(jnp.append(labels, 0.3))[0], raw(jnp.append(labels, 0.3))[0], rtol=1e-6
    )


@pytest.mark.parametrize("record", [{"slope": 0.6}, {"slope": -0.5, "intercept": 0.0}])
def test_a_malformed_scale_record_is_named(record):
    model = replace(FoundationModel.load(), info={"a_k_scale": record})
    with pytest.raises(DataError, match="a_k_scale"):
        a_k_scale_of(model)


def test_the_amortized_a_k_is_put_on_ak_targs_scale(example_stars):
    from bayesfm.infer.setup import StarInference, amortized_labels

    setup = StarInference.default()
    stars = example_stars.tokens
    raw_mean, raw_sigma = amortized_labels(
        replace(setup, model=_on_scale(setup.model, None)), stars
    )
    mean, sigma = amortized_labels(replace(setup, model=_on_scale(setup.model, SCALE)), stars)
    k = setup.emulator.inputs.index("a_k")
    np.testing.assert_allclose(sigma[:, k], 0.6 * raw_sigma[:, k], rtol=1e-5)
    np.testing.assert_allclose(mean[:, k], 0.04 + 0.6 * raw_mean[:, k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean[:, :k], raw_mean[:, :k], rtol=1e-6)


def test_the_mapped_prior_is_the_same_prior_on_the_new_scale():
    prior = GaussianMixturePrior.load()
    mapped = prior.mapped("a_k", SCALE.slope, SCALE.intercept)
    x = np.asarray(prior.distribution().sample(jax.random.PRNGKey(0), (200,)))
    y = x.copy()
    y[:, 4] = SCALE.true_a_k(x[:, 4])
    # densities transform with the Jacobian 1 / slope
    np.testing.assert_allclose(
        np.asarray(mapped.distribution().log_prob(y)),
        np.asarray(prior.distribution().log_prob(x)) - np.log(SCALE.slope),
        rtol=1e-4,
        atol=1e-4,
    )


def test_the_calibration_undoes_a_stretch(rng):
    # fitted values stretched by 1 / 0.6 and offset: ak_targ = 0.04 + 0.6 fitted
    n = 20000
    true = rng.gamma(2.0, 0.08, n)
    error = np.full(n, 0.04)
    noisy = (true - 0.04) / 0.6 + error * rng.standard_normal(n)
    ak_targ = true + 0.05 * rng.standard_normal(n)
    # noisy fits: corrected for the dilution their noise causes
    slope, intercept = calibrate_scale(noisy, error, ak_targ)
    assert slope == pytest.approx(0.6, rel=0.03)
    assert intercept == pytest.approx(0.04, abs=0.01)
    # estimates without noise of their own (e.g. posterior medians): a plain regression
    slope, intercept = calibrate_scale((true - 0.04) / 0.6, None, ak_targ)
    assert slope == pytest.approx(0.6, rel=0.03)
    assert intercept == pytest.approx(0.04, abs=0.01)
    with pytest.raises(DataError, match="need 50"):
        calibrate_scale(noisy[:10], error[:10], ak_targ[:10])


def test_the_free_a_k_search_spans_the_same_transformer_contexts_on_any_scale():
    from bayesfm.model.extinction_fit import FREE_RANGE_MAG, free_range_of

    model = FoundationModel.load()
    assert free_range_of(_on_scale(model, None)) == FREE_RANGE_MAG
    on_scale = free_range_of(_on_scale(model, SCALE))
    np.testing.assert_allclose([SCALE.transformer_a_k(a) for a in on_scale], FREE_RANGE_MAG)


def test_a_refitted_scale_follows_the_one_it_refits():
    recalibration = AKScale(slope=1.1, intercept=-0.01)
    a_k = np.array([-0.1, 0.0, 0.3, 1.2])
    refitted = SCALE.then(recalibration)
    assert np.allclose(
        refitted.true_a_k(a_k), recalibration.true_a_k(SCALE.true_a_k(a_k)), atol=1e-12
    )
    assert np.allclose(refitted.transformer_a_k(refitted.true_a_k(a_k)), a_k, atol=1e-12)
