"""Calibration statistics: PIT with reference errors, coverage, z-scores, SBC ranks."""

import numpy as np
import pytest

from bayesfm.infer.calibration import (
    central_coverage,
    pit_values,
    rank_uniformity,
    sbc_ranks,
    z_scores,
)


def _calibrated(rng, n=4000, draws=400, error=0.8):
    """Posteriors N(mu, 1) of truths drawn from them, seen through N(0, error) reference noise."""
    mu = rng.normal(size=n)
    truth = mu + rng.normal(size=n) + error * rng.normal(size=n)
    return mu[:, None] + rng.normal(size=(n, draws)), truth, np.full(n, error)


def test_calibrated_posteriors_cover_at_nominal_rates_once_reference_errors_are_folded_in():
    posterior, truth, error = _calibrated(np.random.default_rng(0))
    coverage = central_coverage(pit_values(posterior, truth, error))
    for level, fraction in coverage.items():
        assert abs(fraction - float(level)) < 0.03
    # ignoring the reference error makes the same posteriors look overconfident
    assert central_coverage(pit_values(posterior, truth))["0.68"] < 0.6
    z = z_scores(posterior, truth, error)
    assert abs(np.std(z) - 1.0) < 0.05


def test_overconfident_posteriors_undercover():
    rng = np.random.default_rng(1)
    posterior, truth, error = _calibrated(rng)
    narrow = posterior.mean(axis=1, keepdims=True) + 0.3 * (
        posterior - posterior.mean(axis=1, keepdims=True)
    )
    assert central_coverage(pit_values(narrow, truth, error))["0.68"] < 0.55


def test_missing_draws_or_truths_give_nan_and_are_left_out_of_coverage():
    draws = np.array([[0.0, 1.0, 2.0], [np.nan] * 3, [0.0, 1.0, 2.0]])
    pit = pit_values(draws, np.array([1.5, 0.0, np.nan]), np.zeros(3))
    assert pit[0] == pytest.approx(2 / 3) and np.isnan(pit[1:]).all()
    assert central_coverage(pit)["0.68"] == 1.0


def test_sbc_ranks_are_uniform_for_a_correct_posterior_and_not_for_a_biased_one():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=3000)
    data = truth + rng.normal(size=3000)
    # conjugate normal: prior N(0,1), noise N(0,1) -> posterior N(data/2, 1/2)
    posterior = data[:, None] / 2 + np.sqrt(0.5) * rng.normal(size=(3000, 200))
    ranks = sbc_ranks(posterior, truth, 99)
    assert ranks.min() >= 0 and ranks.max() <= 99
    assert rank_uniformity(ranks, 99)["p_value"] > 0.01
    assert rank_uniformity(sbc_ranks(posterior + 0.3, truth, 99), 99)["p_value"] < 1e-6
    with pytest.raises(ValueError, match="cannot give"):
        sbc_ranks(posterior[:, :50], truth, 99)
