"""The emulator is queried exactly as training's emulator task queried the transformer."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.model.batching import EmulatorQuery, TaskMix, sample_batch
from bayesfm.model.emulator import Emulator, make_emulator
from bayesfm.model.emulator_sigma import (
    MEDIAN_ABS_Z,
    fit_emulator_sigma_factors,
    with_fitted_sigma_factors,
)
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.train_step import normalise_stars
from bayesfm.tokens.labels import LABEL_INPUTS


def test_emulator_equals_the_transformer_on_the_emulator_task_context(example_stars, rng):
    model = FoundationModel.load()
    vocabulary = model.vocabulary
    stars = example_stars.tokens
    complete = np.isfinite(stars.values[:, stars.index(LABEL_INPUTS)]).all(axis=1)
    stars = stars.take(np.flatnonzero(complete)[:3])
    normalised = normalise_stars(stars, vocabulary)
    groups = np.array([s.group for s in vocabulary.specs])
    query = EmulatorQuery.build(vocabulary, model.info["emulator_context_errors"])
    batch = sample_batch(
        rng,
        normalised.values,
        normalised.errors,
        normalised.present,
        np.isin(groups, ["label", "extinction"]),
        np.isin(groups, ["xp_bp", "xp_rp", "colour"]),
        TaskMix(0.0, 0.0, 0.0, 1.0),
        max_targets=len(vocabulary),
        emulator_query=query,
    )
    mean, log_var = model.module()(*batch[:5])
    transformer_only = replace(model, emulator_correction=())  # the correction comes on top
    emulator = make_emulator(transformer_only, extinction_law=False)
    out_index = vocabulary.index(emulator.outputs)
    for row in range(len(stars)):
        expected_mean, expected_sigma = emulator(
            jnp.asarray(stars.values[row, stars.index(LABEL_INPUTS)])
        )
        targets = np.asarray(batch.target_index[row])[batch.target_mask[row]]
        position = {int(t): k for k, t in enumerate(out_index)}
        k = [position[int(t)] for t in targets]
        got_mean, got_sigma = vocabulary.denormalise(
            np.asarray(mean[row])[batch.target_mask[row]],
            np.sqrt(np.exp(np.asarray(log_var[row])))[batch.target_mask[row]],
            targets,
        )
        assert len(k) >= 30
        np.testing.assert_allclose(got_mean, np.asarray(expected_mean)[k], rtol=2e-4, atol=2e-5)
        factors = model.info.get("emulator_sigma_factors", {})
        got_sigma = got_sigma * np.array([factors.get(emulator.outputs[j], 1.0) for j in k])
        np.testing.assert_allclose(got_sigma, np.asarray(expected_sigma)[k], rtol=2e-4)


def test_the_emulator_sigma_is_the_transformers_times_the_recorded_factors():
    model = FoundationModel.load()
    info = {k: v for k, v in model.info.items() if k != "emulator_sigma_factors"}
    raw = make_emulator(replace(model, info=info))
    scaled = make_emulator(
        replace(model, info={**info, "emulator_sigma_factors": {"xp_410": 2.0, "bp_rp": 0.5}})
    )
    x = jnp.array([4800.0, 2.5, -0.2, 0.1, 0.1])
    (raw_mean, raw_sigma), (mean, sigma) = raw(x), scaled(x)
    expected = np.asarray(raw_sigma).copy()
    expected[raw.outputs.index("xp_410")] *= 2.0
    expected[raw.outputs.index("bp_rp")] *= 0.5
    np.testing.assert_allclose(np.asarray(sigma), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(mean), np.asarray(raw_mean))


def test_sigma_factors_make_the_median_normalised_residual_that_of_a_gaussian(rng):
    # residuals drawn with sd sqrt(error^2 + (0.6 sigma)^2): the factor must come out 0.6
    n = 20000
    inputs = rng.uniform(0.0, 1.0, (n, 1)).astype(np.float32)
    error = np.full((n, 2), 0.5)
    claimed = jnp.array([2.0, 1.0])

    def emulate(x):
        return jnp.zeros(2) + x[0], claimed * (1.0 + x[0])

    emulator = Emulator(("x",), ("a", "b"), jax.jit(emulate))
    _, sigma = emulator.batch(inputs)
    true_sd = np.sqrt(error**2 + (np.array([0.6, 1.5]) * sigma) ** 2)
    observed = inputs + true_sd * rng.standard_normal((n, 2))
    observed[:100, 1] = np.nan
    factors = fit_emulator_sigma_factors(emulator, inputs, observed, error)
    np.testing.assert_allclose([factors["a"], factors["b"]], [0.6, 1.5], rtol=0.04)
    fitted = np.array([factors["a"], factors["b"]])
    z = np.abs(observed - inputs) / np.sqrt(error**2 + (fitted * sigma) ** 2)
    np.testing.assert_allclose(np.nanmedian(z, axis=0), MEDIAN_ABS_Z, atol=1e-4)


def test_a_model_without_sigma_factors_gets_its_own_fitted(example_stars):
    shipped = FoundationModel.load()
    info = {k: v for k, v in shipped.info.items() if k != "emulator_sigma_factors"}
    fitted = with_fitted_sigma_factors(replace(shipped, info=info), example_stars.tokens, False)
    factors = fitted.info["emulator_sigma_factors"]
    assert set(factors) == set(make_emulator(shipped).outputs)
    assert all(0.05 <= f <= 20.0 for f in factors.values())
    assert factors != shipped.info["emulator_sigma_factors"]  # fitted here, on other stars
