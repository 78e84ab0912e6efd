"""The emulator's correction: fitted to the transformer's residuals, carried in the weights file."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.common.pytree_io import load_named_arrays, save_named_arrays
from bayesfm.model.emulator import make_emulator
from bayesfm.model.emulator_correction_fit import (
    CorrectionConfig,
    carrying_correction,
    fit_emulator_correction,
    with_emulator_correction,
)
from bayesfm.model.fitzpatrick import fit_to_fitzpatrick, fitzpatrick_on_tokens, token_centres_nm
from bayesfm.model.foundation_model import FoundationModel, file_sha256
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

TINY = CorrectionConfig(hidden=(32,), steps=400, batch_size=64, learning_rate=1e-2, seed=3)


def _stars_off_the_transformer(model, rng, n=400):
    """Train stars whose tokens are the emulator's means plus a smooth shift of the labels
    (a known misfit the correction must learn), with small errors, and the shift [n, K]."""
    plain = make_emulator(model, extinction_law=False)
    labels = np.column_stack(
        [
            rng.uniform(4000, 6500, n),
            rng.uniform(1.0, 4.8, n),
            rng.uniform(-1.5, 0.4, n),
            rng.uniform(-0.1, 0.35, n),
            rng.uniform(0.0, 0.6, n),
        ]
    ).astype(np.float32)
    scale = model.vocabulary.scaling(plain.outputs).scale
    z = model.vocabulary.scaling(LABEL_INPUTS).normalise(labels)
    shift = 0.5 * scale * np.tanh(z[:, :1] - 0.5 * z[:, 1:2])
    mean = plain.batch(labels)[0]
    names = (*LABEL_INPUTS, *plain.outputs)
    values = np.column_stack([labels, mean + shift])
    errors = np.column_stack([np.full_like(labels, 0.01), np.full_like(mean, 0.02) * scale])
    return StarTokens(np.arange(n, dtype=np.int64), names, values, errors), shift


@pytest.mark.parametrize("reads_means", [True, False], ids=["labels_and_means", "labels_only"])
def test_the_correction_learns_the_transformers_misfit_and_adds_nothing_else(
    tiny_model_path, rng, reads_means
):
    model = FoundationModel.load(tiny_model_path)
    train, _ = _stars_off_the_transformer(model, rng)
    config = replace(TINY, reads_means=reads_means)
    corrected = with_emulator_correction(model, train, config, progress=False)
    assert corrected.info["emulator_correction"]["train_stars"] == len(train)
    inputs = train.values[:, train.index(LABEL_INPUTS)]
    observed = train.values[:, len(LABEL_INPUTS) :]
    before, sigma_before = make_emulator(model, extinction_law=False).batch(inputs)
    after, sigma_after = make_emulator(corrected, extinction_law=False).batch(inputs)
    rms = [np.sqrt(np.mean((observed - m) ** 2)) for m in (before, after)]
    assert rms[1] < 0.25 * rms[0]
    np.testing.assert_array_equal(sigma_after, sigma_before)  # the sigma stays the transformer's


def test_a_saved_correction_loads_back_and_emulates_the_same(tiny_model_path, rng, tmp_path):
    model = FoundationModel.load(tiny_model_path)
    train, _ = _stars_off_the_transformer(model, rng, n=64)
    corrected = with_emulator_correction(model, train, replace(TINY, steps=5), progress=False)
    corrected.save(tmp_path / "m")
    loaded = FoundationModel.load(tmp_path / "m")
    x = train.values[:8, train.index(LABEL_INPUTS)]
    for a, b in zip(make_emulator(corrected).batch(x), make_emulator(loaded).batch(x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_emulator(model).batch(x)[0], make_emulator(loaded).batch(x)[0])


def test_a_weights_file_with_an_incomplete_correction_is_refused(tiny_model_path, rng, tmp_path):
    model = FoundationModel.load(tiny_model_path)
    train, _ = _stars_off_the_transformer(model, rng, n=64)
    with_emulator_correction(model, train, replace(TINY, steps=1), progress=False).save(
        tmp_path / "m"
    )
    weights = tmp_path / "m.safetensors"
    arrays = load_named_arrays(weights)
    del arrays["emulator_correction/1/b"]
    save_named_arrays(weights, arrays)
    meta = (tmp_path / "m.json").read_text()
    old_sha = meta.split('"weights_sha256": "')[1].split('"')[0]
    (tmp_path / "m.json").write_text(meta.replace(old_sha, file_sha256(weights)))
    with pytest.raises(DataError, match="emulator_correction layers are incomplete"):
        FoundationModel.load(tmp_path / "m")


def test_a_correction_for_other_tokens_is_refused(tiny_model_path):
    model = FoundationModel.load(tiny_model_path)
    wrong = ((np.zeros((5, 4), np.float32), np.zeros(4, np.float32)),)  # 4 outputs, not 34
    with pytest.raises(DataError, match="re-fit it"):
        make_emulator(replace(model, emulator_correction=wrong))
    with pytest.raises(DataError, match="takes"):
        make_emulator(replace(model, emulator_correction=wrong), inputs=LABEL_INPUTS[:4])


def _magnitude_responses(model, labels):
    """Each star's J = d(-2.5 log10 flux)/d a_k [n, F] from its emulator, and the flux
    tokens' names [F]."""
    emulator = make_emulator(model, extinction_law=False)
    names = [name for name in emulator.outputs if name.startswith("xp_")]
    flux = np.array([name in names for name in emulator.outputs])

    def magnitudes(x):
        return -2.5 * jnp.log10(emulator.emulate(x)[0][flux])

    return np.asarray(jax.vmap(jax.jacfwd(magnitudes))(jnp.asarray(labels)))[..., -1], names


def _flux_response_spread(model, labels):
    """Median over stars and flux tokens of |J - the stars' median J|, J = d(-2.5 log10 flux)/d a_k
    less its mean over the star's tokens (the RP normalisation's constant)."""
    response = _magnitude_responses(model, labels)[0]
    response = response - response.mean(axis=1, keepdims=True)
    return np.median(np.abs(response - np.median(response, axis=0)))


def _stars_off_in_teff_and_logg(rng, n=400):
    """The shipped transformer (no correction; its fluxes are positive, as magnitudes need),
    train stars whose fluxes it misses by a smooth factor of teff and logg (no a_k in it),
    their inputs [n, 5] and observed tokens [n, K]."""
    model = replace(FoundationModel.load(), emulator_correction=())
    inputs = np.column_stack(
        [
            rng.uniform(4200, 6000, n),
            rng.uniform(1.5, 4.5, n),
            rng.uniform(-1.0, 0.3, n),
            rng.uniform(0.0, 0.3, n),
            rng.uniform(0.0, 0.4, n),
        ]
    ).astype(np.float32)
    plain = make_emulator(model, extinction_law=False)
    mean = plain.batch(inputs)[0]
    z = model.vocabulary.scaling(LABEL_INPUTS).normalise(inputs)
    observed = mean * (1 + 0.1 * np.tanh(z[:, :1] - 0.5 * z[:, 1:2]))
    errors = np.full_like(mean, 0.02) * model.vocabulary.scaling(plain.outputs).scale
    train = StarTokens(
        np.arange(n, dtype=np.int64),
        (*LABEL_INPUTS, *plain.outputs),
        np.column_stack([inputs, observed]),
        np.column_stack([np.full_like(inputs, 0.01), errors]),
    )
    return model, train, inputs, observed


def _rms_misfit(model, inputs, observed):
    mean = make_emulator(model, extinction_law=False).batch(inputs)[0]
    return np.sqrt(np.mean((observed - mean) ** 2))


def test_the_response_penalty_gives_every_star_one_extinction_response(rng):
    model, train, inputs, observed = _stars_off_in_teff_and_logg(rng)
    free = with_emulator_correction(model, train, TINY, progress=False)
    tied = with_emulator_correction(
        model, train, replace(TINY, response_tolerance=30.0), progress=False
    )
    assert tied.info["emulator_correction"]["response_tolerance"] == 30.0
    spread_free, spread_tied = (_flux_response_spread(m, inputs) for m in (free, tied))
    assert spread_tied < 0.7 * spread_free
    # it still learns the misfit, which involves no a_k
    assert _rms_misfit(tied, inputs, observed) < 0.8 * _rms_misfit(model, inputs, observed)


def _a55_over_ak(model, labels):
    """Each star's A(55)/A(K) [n]: its emulator's d(-2.5 log10 flux)/d a_k fitted to
    Fitzpatrick (2019)'s shape, as the report's extinction curve does for five types."""
    response, names = _magnitude_responses(model, labels)
    f19 = fitzpatrick_on_tokens(token_centres_nm(names), model.vocabulary.binning.width_nm)
    return np.array([fit_to_fitzpatrick(curve, f19)[0] for curve in response])


def test_the_scale_penalty_gives_every_star_one_a55_over_ak(rng):
    model, train, inputs, observed = _stars_off_in_teff_and_logg(rng)
    free = with_emulator_correction(model, train, TINY, progress=False)
    config = replace(TINY, scale_tolerance=0.3, latent_a_k=0.05)
    fit = fit_emulator_correction(model, train, config, progress=False)
    tied = carrying_correction(model, fit, config)
    assert tied.info["emulator_correction"]["scale_tolerance"] == 0.3

    def spread(m):
        """A(55)/A(K) across the stars at one a_k, 90th over 10th percentile."""
        at_one_a_k = inputs.copy()
        at_one_a_k[:, LABEL_INPUTS.index("a_k")] = 0.2
        low, high = np.percentile(_a55_over_ak(m, at_one_a_k), [10, 90])
        return high / low

    assert spread(tied) - 1 < 0.5 * (spread(free) - 1)
    # it still learns the misfit, at the a_k it fitted
    at_fitted = inputs.copy()
    at_fitted[:, LABEL_INPUTS.index("a_k")] = fit.a_k
    assert _rms_misfit(tied, at_fitted, observed) < 0.25 * _rms_misfit(model, inputs, observed)


def test_latent_a_k_recovers_the_extinction_the_labels_miss(rng):
    # train stars observed at a_k + an unknown offset: a correction of the labels alone
    # cannot learn it, the fitted a_k must
    model, train, inputs, _ = _stars_off_in_teff_and_logg(rng)
    plain = make_emulator(model, extinction_law=False)
    missed = rng.normal(0.0, 0.05, len(inputs)).astype(np.float32)
    observed = plain.batch(inputs + np.outer(missed, np.eye(5)[LABEL_INPUTS.index("a_k")]))[0]
    train = StarTokens(
        train.source_id, train.names, np.column_stack([inputs, observed]), train.errors
    )
    config = replace(TINY, latent_a_k=0.1)
    fit = fit_emulator_correction(model, train, config, progress=False)
    found = fit.a_k - inputs[:, LABEL_INPUTS.index("a_k")]
    assert np.corrcoef(found, missed)[0, 1] > 0.9
    assert np.all((fit.a_k_err > 0) & (fit.a_k_err < 0.1))
    assert carrying_correction(model, fit, config).info["emulator_correction"]["train_stars"] == 400
