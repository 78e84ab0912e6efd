import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.model.foundation_model import FoundationModel, build_model
from bayesfm.model.predict import TASKS, predict
from bayesfm.model.sigma_scale import SigmaScale, fit_sigma_factor
from bayesfm.model.transformer import TransformerConfig
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import default_token_specs
from bayesfm.tokens.vocabulary import fit_vocabulary

TINY = dict(width=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, mlp_width=32)


@pytest.fixture(scope="module")
def tiny_model(example_stars):
    vocabulary = fit_vocabulary(example_stars.tokens, default_token_specs(), XPBinning())
    config = TransformerConfig(n_tokens=len(vocabulary), **TINY)
    graphdef, params = build_model(config, seed=5)
    return FoundationModel(config, vocabulary, graphdef, params)


def test_four_tasks_give_physical_predictions_in_request_order(tiny_model, example_stars):
    stars = example_stars.tokens
    vocabulary = tiny_model.vocabulary
    for context_groups, request_groups in TASKS.values():
        request = vocabulary.names_in_group(*request_groups)
        context = [n for n in vocabulary.names_in_group(*context_groups) if n not in request]
        if not context:  # labels -> labels: condition on teff, logg
            context, request = ["teff", "logg"], ["fe_h", "alpha_m"]
        mean, sigma = predict(tiny_model, stars, request, context=context, batch_size=4)
        assert mean.shape == sigma.shape == (len(stars), len(request))
        assert np.isfinite(mean).all() and (sigma > 0).all()
    forward, _ = predict(tiny_model, stars, ["teff", "logg", "a_k"], context=["xp_810", "bp_rp"])
    backward, _ = predict(tiny_model, stars, ["a_k", "logg", "teff"], context=["bp_rp", "xp_810"])
    np.testing.assert_allclose(backward, forward[:, ::-1], rtol=1e-5)
    # physical units: the normalisation is undone
    teff_index = vocabulary.index(["teff"])[0]
    assert np.all(
        np.abs(forward[:, 0] - vocabulary.loc[teff_index]) < 20 * vocabulary.scale[teff_index]
    )


def test_predict_rejects_overlap_and_empty_context(tiny_model, example_stars):
    stars = example_stars.tokens
    with pytest.raises(DataError, match="both requested"):
        predict(tiny_model, stars, ["teff"], context=["teff", "logg"])
    with pytest.raises(DataError, match="unknown token"):
        predict(tiny_model, stars, ["vsini"], context=["teff"])
    blank = stars.take(np.arange(len(stars)))
    blank.values[:, blank.index(["j_h"])[0]] = np.nan
    with pytest.raises(DataError, match="none of the context tokens"):
        predict(tiny_model, blank, ["teff"], context=["j_h"])


def test_sigma_factor_fitted_on_stars_recovers_the_true_scale():
    rng = np.random.default_rng(3)
    sigma = rng.uniform(0.5, 2.0, 20000)
    truth_error = 0.1 * sigma
    truth = rng.normal(0.0, np.hypot(1.3 * sigma, truth_error))  # predicted sigma 1.3x too small
    factor = fit_sigma_factor(np.zeros_like(truth), sigma, truth, truth_error)
    assert factor == pytest.approx(1.3, rel=0.03)


def test_sigma_scale_scales_named_tokens_and_round_trips(tiny_model, example_stars, tmp_path):
    stars = example_stars.tokens
    scale = SigmaScale("spectra_to_labels", {"teff": 0.5, "logg": 2.0})
    _, raw = predict(tiny_model, stars, ["teff", "fe_h", "logg"], context=["bp_rp"])
    _, scaled = predict(
        tiny_model, stars, ["teff", "fe_h", "logg"], context=["bp_rp"], sigma_scale=scale
    )
    np.testing.assert_allclose(scaled, raw * [0.5, 1.0, 2.0], rtol=1e-6)
    scale.save(tmp_path / "scale.json")
    assert SigmaScale.load(tmp_path / "scale.json") == scale


def test_sigma_scale_rejects_bad_files_and_factors(tmp_path):
    with pytest.raises(DataError, match="positive and finite"):
        SigmaScale("spectra_to_labels", {"teff": -1.0})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read sigma scale factors"):
        SigmaScale.load(tmp_path / "bad.json")
    with pytest.raises(DataError, match="fit_sigma_scale"):
        SigmaScale.load(tmp_path / "missing.json")
