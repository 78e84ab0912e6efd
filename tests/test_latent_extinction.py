"""Latent extinction: the per-star A_K fit against closed-form posteriors, and in training."""

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.model.emulator import Emulator
from bayesfm.model.extinction_fit import fit_extinction, load_extinction
from bayesfm.model.train_config import RunConfig, TrainConfig
from bayesfm.model.training import train
from bayesfm.sources.library import load_library

TINY = dict(width=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, mlp_width=32)
SLOPE = jnp.array([-2.0, -1.0, 0.5, 3.0])  # d token / d A_K of a linear toy emulator
SIGMA = jnp.array([0.01, 0.02, 0.01, 0.03])


def _linear_emulator():
    """mean = labels-independent offset + SLOPE A_K, constant sigma: a Gaussian-linear
    problem whose A_K posterior is known in closed form."""

    def emulate(x):
        return 1.0 + SLOPE * x[4], SIGMA

    return Emulator(("teff", "logg", "fe_h", "alpha_m", "a_k"), ("a", "b", "c", "d"), emulate)


def _analytic_posterior(observed, errors, prior_mean=None, prior_sd=None):
    precision_terms = np.asarray(SLOPE) ** 2 / (errors**2 + np.asarray(SIGMA) ** 2)
    information = precision_terms.sum(axis=1)
    weighted = (np.asarray(SLOPE) * (observed - 1.0) / (errors**2 + np.asarray(SIGMA) ** 2)).sum(1)
    if prior_mean is not None:
        information = information + 1 / prior_sd**2
        weighted = weighted + prior_mean / prior_sd**2
    return weighted / information, 1 / np.sqrt(information)


def test_fit_matches_the_closed_form_posterior_with_and_without_prior(rng):
    truth = rng.uniform(0.0, 1.0, 40)
    errors = np.full((40, 4), 0.02)
    observed = 1.0 + np.asarray(SLOPE) * truth[:, None] + rng.normal(0, 0.03, (40, 4))
    labels = np.zeros((40, 4))
    emulator = _linear_emulator()

    flat = fit_extinction(emulator, labels, observed, errors, broad_range=(-0.2, 1.5), refine=True)
    mean, sd = _analytic_posterior(observed, errors)
    np.testing.assert_allclose(flat.a_k, mean, atol=1e-4)
    np.testing.assert_allclose(flat.a_k_err, sd, rtol=0.02)

    prior_mean = truth + 0.05
    with_prior = fit_extinction(emulator, labels, observed, errors, prior_mean, prior_sd=0.01)
    mean, sd = _analytic_posterior(observed, errors, prior_mean, 0.01)
    np.testing.assert_allclose(with_prior.a_k, mean, atol=1e-4)
    np.testing.assert_allclose(with_prior.a_k_err, sd, rtol=0.02)


def test_missing_tokens_add_nothing_and_a_star_without_tokens_is_nan(rng):
    observed = np.array([[1.6, 1.3, np.nan, np.nan], [np.nan] * 4])
    errors = np.full((2, 4), 0.02)
    fit = fit_extinction(_linear_emulator(), np.zeros((2, 4)), observed, errors, refine=True)
    slope, sigma = np.asarray(SLOPE[:2]), np.asarray(SIGMA[:2])
    weights = slope**2 / (0.02**2 + sigma**2)
    expected = (slope * (observed[0, :2] - 1.0) / (0.02**2 + sigma**2)).sum() / weights.sum()
    assert fit.a_k[0] == pytest.approx(expected, abs=1e-4)
    assert np.isnan(fit.a_k[1]) and np.isnan(fit.a_k_err[1])


@pytest.mark.slow
def test_training_with_latent_extinction_saves_and_resumes_the_cleaned_a_k(tmp_path):
    stars = load_library().tokens.take(np.arange(600))
    settings = TrainConfig(
        batch_size=16,
        max_steps=3,
        warmup_steps=1,
        eval_every=1,
        val_stars=32,
        latent_extinction_every=2,
        extinction_anchor=True,
        max_targets=36,
    )
    run = RunConfig(seed=0, model=TINY, training=settings)
    run = replace(run, task_mix=run.task_mix._replace(random=0.2, emulator=0.2))
    model = train(run, stars, tmp_path, progress=False)
    assert set(model.info["emulator_context_errors"]) == {"teff", "logg", "fe_h", "alpha_m", "a_k"}
    cleaned = load_extinction(tmp_path / "best_extinction.npz")
    raw = dict(zip(stars.source_id.tolist(), stars.column("a_k")[0].tolist(), strict=True))
    changed = [s for s, (a_k, _) in cleaned.items() if np.isfinite(a_k) and a_k != raw[s]]
    assert changed, "no training star's a_k was refitted"
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as checkpoint:
        assert int(checkpoint["extra_cleaned_at"]) == 2
        a_k = checkpoint["extra_train_a_k"]
    # a resumed run continues from the saved extinctions instead of refitting them
    more = replace(run, training=replace(settings, max_steps=4))
    train(more, stars, tmp_path, progress=False)
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as checkpoint:
        np.testing.assert_array_equal(checkpoint["extra_train_a_k"], a_k)
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4


def _benchmark():
    path = Path(__file__).parents[1] / "benchmarks" / "emulator_fidelity.py"
    spec = importlib.util.spec_from_file_location("emulator_fidelity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fidelity_table_reports_known_residuals():
    names = ("xp_445", "xp_585", "xp_725", "xp_905", "bp_rp")
    offset = np.array([1.0, 2.0, 3.0, 4.0, 0.0])

    def emulate(x):  # residual k x 0.1 in each region; x[1] shifts BP-RP
        mean = 1.0 + jnp.asarray(offset) * 0.1 + jnp.array([0, 0, 0, 0, 1.0]) * x[1]
        return mean, jnp.full(5, 0.1)

    emulator = Emulator(("teff", "logg", "fe_h", "alpha_m", "a_k"), names, emulate)
    inputs = np.zeros((3, 5), np.float32)
    inputs[:, 1] = [0.0, 0.1, -0.1]  # BP-RP residuals 0, 0.1, -0.1
    observed = np.ones((3, 5))
    row = _benchmark().fidelity(emulator, inputs, observed, np.full((3, 5), 0.1))
    for region, k in zip(
        ("BP 400-500", "BP 500-660", "RP 660-800", "RP 800-1000"), offset, strict=False
    ):
        assert row[region]["over_obs_error"] == pytest.approx(k)
        assert row[region]["over_total_sigma"] == pytest.approx(k / np.sqrt(2))
        assert "over_likelihood_sigma" not in row[region]  # no noise model given
    assert row["bp_rp_robust_sigma_mag"] == pytest.approx(1.4826 * 0.1)
    scale = np.array([2.0, 2.0, 0.5, 0.5, 1.0])  # the noise model's c per token
    scaled = _benchmark().fidelity(emulator, inputs, observed, np.full((3, 5), 0.1), scale)
    for region, k, c in (("BP 400-500", 1.0, 2.0), ("RP 660-800", 3.0, 0.5)):
        assert scaled[region]["over_likelihood_sigma"] == pytest.approx(k / np.sqrt(2) / c)
