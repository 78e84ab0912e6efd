"""Calibration of posteriors against reference labels and in simulation-based calibration.

Reference labels have errors of their own, so the posterior is compared with the truth
after convolving it with the reference error: the PIT value of a star is
P(posterior draw + reference noise < reference label), exact for an empirical posterior
(a mean of normal CDFs). A calibrated posterior gives uniform PIT values, so the central
interval at level p covers the reference in a fraction p of stars.

SBC (Talts et al. 2018) draws true labels from the prior, simulates data, infers, and
ranks each truth among L posterior draws: ranks are uniform on 0..L for a correct
posterior whatever the prior.
"""

import numpy as np
from scipy import stats

__all__ = [
    "COVERAGE_LEVELS",
    "pit_values",
    "central_coverage",
    "z_scores",
    "sbc_ranks",
    "rank_uniformity",
]

COVERAGE_LEVELS = (0.5, 0.68, 0.9, 0.95)


def pit_values(draws, truth, truth_error=None) -> np.ndarray:
    """PIT of each reference label under the posterior convolved with its error.

    Args:
        draws: Posterior draws [n, S] (NaN rows: no posterior).
        truth: Reference values [n] (NaN: none).
        truth_error: Their 1-sigma errors [n]; None or 0 means exact.

    Returns:
        PIT values in [0, 1] [n]; NaN where draws or truth are missing.
    """
    draws, truth = np.asarray(draws, float), np.asarray(truth, float)
    error = np.zeros_like(truth) if truth_error is None else np.asarray(truth_error, float)
    error = np.where(np.isfinite(error) & (error > 0), error, 0.0)[:, None]
    with np.errstate(all="ignore"):
        below = np.where(
            error > 0,
            stats.norm.cdf((truth[:, None] - draws) / np.where(error > 0, error, 1.0)),
            (draws < truth[:, None]).astype(float),
        )
    below = np.where(np.isfinite(draws), below, np.nan)
    usable = np.isfinite(truth) & np.isfinite(draws).any(axis=1)
    out = np.full(len(truth), np.nan)
    out[usable] = np.nanmean(below[usable], axis=1)
    return out


def central_coverage(pit, levels=COVERAGE_LEVELS) -> dict:
    """Fraction of stars whose reference lies in the central interval at each level."""
    pit = np.asarray(pit, float)
    pit = pit[np.isfinite(pit)]
    return {f"{level:.2f}": float(np.mean(np.abs(pit - 0.5) <= level / 2)) for level in levels}


def z_scores(draws, truth, truth_error=None) -> np.ndarray:
    """(reference - posterior mean) / sqrt(posterior variance + reference error^2) [n]."""
    draws, truth = np.asarray(draws, float), np.asarray(truth, float)
    error = np.zeros_like(truth) if truth_error is None else np.nan_to_num(truth_error)
    with np.errstate(all="ignore"):
        mean, var = np.nanmean(draws, axis=1), np.nanvar(draws, axis=1)
        return (truth - mean) / np.sqrt(var + np.asarray(error, float) ** 2)


def sbc_ranks(draws, truth, num_ranks: int) -> np.ndarray:
    """Rank of each truth among ``num_ranks`` evenly thinned draws [n] (values 0..num_ranks)."""
    draws = np.asarray(draws, float)
    if draws.shape[1] < num_ranks:
        raise ValueError(f"{draws.shape[1]} draws per star cannot give {num_ranks} ranks")
    picks = np.linspace(0, draws.shape[1] - 1, num_ranks).round().astype(int)
    return np.sum(draws[:, picks] < np.asarray(truth, float)[:, None], axis=1)


def rank_uniformity(ranks, num_ranks: int, bins: int = 10) -> dict:
    """Chi-square test of uniform SBC ranks over ``bins`` equal bins of 0..num_ranks."""
    counts, _ = np.histogram(ranks, bins=bins, range=(-0.5, num_ranks + 0.5))
    chi2, p_value = stats.chisquare(counts)
    return {"chi2": float(chi2), "p_value": float(p_value), "counts": counts.tolist()}
