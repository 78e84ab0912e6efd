"""The emulator's extinction law: one response for every star, on ak_targ's scale."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_law import ExtinctionLaw, fit_response
from bayesfm.model.foundation_model import FoundationModel


def _with_law(model, law):
    return replace(model, info={**model.info, "extinction_law": law.to_info()})


def _bare(model):
    """``model`` with neither an extinction law nor an a_k scale: the transformer's a_k."""
    drop = ("extinction_law", "a_k_scale")
    return replace(model, info={k: v for k, v in model.info.items() if k not in drop})


def _law(outputs, transformer_a_k=0.02, reference_a_k=0.05, scale=0.6):
    response = {name: 2.0 - 0.002 * k for k, name in enumerate(outputs)}
    return ExtinctionLaw(transformer_a_k, reference_a_k, scale, response)


def test_the_emulator_reddens_the_transformer_at_the_reference_context():
    model = _bare(FoundationModel.load())
    raw = make_emulator(model)
    law = _law(raw.outputs)
    emulator = make_emulator(_with_law(model, law))
    labels = jnp.array([4800.0, 2.5, -0.2, 0.1])
    a_k = 0.3
    reference_mean, reference_sigma = raw(jnp.append(labels, law.transformer_a_k))
    mean, sigma = emulator(jnp.append(labels, a_k))
    response = np.array([law.response[n] for n in raw.outputs])
    flux = np.array([n.startswith("xp_") for n in raw.outputs])
    factor = 10 ** (-0.4 * response * (a_k - law.reference_a_k))
    np.testing.assert_allclose(
        np.asarray(mean)[flux], np.asarray(reference_mean)[flux] * factor[flux], rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(mean)[~flux],
        np.asarray(reference_mean)[~flux] + response[~flux] * (a_k - law.reference_a_k),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        np.asarray(sigma)[flux], np.asarray(reference_sigma)[flux] * factor[flux], rtol=1e-5
    )

    # the same A(lambda)/A(K) for every star: d magnitude / d A_K is the response everywhere
    def magnitudes(a, at):
        m, _ = emulator(jnp.append(at, a))
        return -2.5 * jnp.log10(m[np.flatnonzero(flux)])

    for star in ([4300.0, 2.0, 0.0, 0.05], [6400.0, 4.2, -0.2, 0.0]):
        slope = jax.jacfwd(magnitudes)(0.1, jnp.asarray(star))
        np.testing.assert_allclose(np.asarray(slope), response[flux], rtol=1e-4)


def test_a_malformed_law_record_is_named():
    model = FoundationModel.load()
    broken = replace(model, info={**model.info, "extinction_law": {"response": {}}})
    with pytest.raises(DataError, match="extinction_law"):
        make_emulator(broken)
    law = _law(("xp_395",))
    with pytest.raises(DataError, match="no response"):
        make_emulator(_with_law(model, law))


def test_the_response_fit_recovers_a_known_law(rng):
    n, true = 4000, np.array([3.0, 1.0, 0.5])
    is_flux = np.array([True, True, False])
    delta = rng.uniform(-0.1, 0.8, n)
    reference = np.tile([2.0, 1.0, 0.7], (n, 1))
    errors = np.full((n, 3), 0.01)
    observed = np.where(
        is_flux, reference * 10 ** (-0.4 * true * delta[:, None]), reference + true * delta[:, None]
    )
    observed = observed + errors * rng.standard_normal((n, 3))
    observed[:50, 0] *= 3.0  # outliers are clipped
    observed[50:60, 1] = np.nan
    response = fit_response(delta, reference, np.zeros((n, 3)), observed, errors, is_flux)
    np.testing.assert_allclose(response, true, rtol=0.01)


def test_the_amortized_a_k_is_put_on_the_laws_scale(example_stars):
    from bayesfm.infer.setup import StarInference, amortized_labels
    from bayesfm.model.predict import predict

    setup = StarInference.default()
    model = _bare(setup.model)
    law = _law(setup.emulator.outputs, transformer_a_k=0.0, reference_a_k=0.04, scale=0.5)
    setup = replace(setup, model=_with_law(model, law))
    stars = example_stars.tokens
    mean, sigma = amortized_labels(setup, stars)
    observables = [n for n in setup.emulator.outputs if n in stars.names]
    raw_mean, raw_sigma = predict(model, stars, list(setup.emulator.inputs), context=observables)
    k = setup.emulator.inputs.index("a_k")
    np.testing.assert_allclose(sigma[:, k], 0.5 * raw_sigma[:, k], rtol=1e-5)
    np.testing.assert_allclose(mean[:, k], 0.04 + 0.5 * raw_mean[:, k], rtol=1e-5, atol=1e-6)


def test_the_law_fit_recovers_a_known_law_and_scale(rng):
    from bayesfm.model.extinction_law import redden
    from bayesfm.model.extinction_law_fit import fit_extinction_law
    from bayesfm.tokens.labels import LABEL_INPUTS
    from bayesfm.tokens.star_tokens import StarTokens

    model = _bare(FoundationModel.load())
    raw = make_emulator(model)
    # stars reddened through a known law; their cleaned A_K on a stretched scale, ak_targ noisy
    truth = ExtinctionLaw(0.0, 0.04, 0.6, {n: 2.5 - 0.1 * k for k, n in enumerate(raw.outputs)})
    flux = set(model.vocabulary.names_in_group("xp_bp", "xp_rp"))
    is_flux = np.array([n in flux for n in raw.outputs])
    reddened = jax.jit(jax.vmap(redden(raw.emulate, truth, raw.outputs, is_flux, 4)))
    n = 400
    labels = np.column_stack(
        [
            rng.uniform(4300, 5600, n),
            rng.uniform(2.0, 4.5, n),
            rng.uniform(-0.5, 0.2, n),
            rng.uniform(0.0, 0.2, n),
        ]
    )
    a_k = rng.uniform(0.0, 0.6, n)
    mean, _ = reddened(jnp.asarray(np.column_stack([labels, a_k]), jnp.float32))
    names = model.vocabulary.names
    values = np.full((n, len(names)), np.nan)
    columns = [names.index(x) for x in raw.outputs]
    values[:, columns] = np.asarray(mean) * (1 + 0.002 * rng.standard_normal(mean.shape))
    values[:, [names.index(x) for x in LABEL_INPUTS]] = np.column_stack(
        [labels, a_k + 0.03 * rng.standard_normal(n)]
    )
    errors = np.where(np.isfinite(values), 0.002 * np.abs(values) + 1e-4, np.nan)
    stars = StarTokens(np.arange(n, dtype=np.int64), tuple(names), values, errors)
    cleaned = truth.transformer_a_k + (a_k - truth.reference_a_k) / truth.a_k_scale

    law = fit_extinction_law(model, stars, cleaned, 0.0, calibration_stars=300)

    fitted = np.array([law.response[x] for x in raw.outputs])
    expected = np.array([truth.response[x] for x in raw.outputs])
    np.testing.assert_allclose(fitted, expected, rtol=0.05, atol=0.02)
    assert law.a_k_scale == pytest.approx(truth.a_k_scale, rel=0.05)
    assert law.reference_a_k == pytest.approx(truth.reference_a_k, abs=0.01)
