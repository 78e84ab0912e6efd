"""Accuracy and calibration statistics used by the validation scripts."""

import numpy as np

__all__ = ["robust_sigma", "extra_spread", "residual_stats", "coverage_within"]


def robust_sigma(x) -> float:
    """1.4826 x median absolute deviation from the median (NaN ignored)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def extra_spread(offset, known_variance) -> float:
    """e >= 0 with a robust sigma of offset / sqrt(known_variance + e^2) of one (0 where it
    is already at most one)."""

    def spread(e):
        return robust_sigma(offset / np.sqrt(known_variance + e**2))

    if spread(0.0) <= 1.0:
        return 0.0
    low, high = 0.0, 10 * robust_sigma(offset)
    for _ in range(60):  # bisection: the spread falls as e grows
        middle = 0.5 * (low + high)
        low, high = (middle, high) if spread(middle) > 1.0 else (low, middle)
    return 0.5 * (low + high)


def residual_stats(predicted, truth) -> dict:
    """Robust sigma, bias (median residual), RMS and count of ``predicted - truth``."""
    residual = np.asarray(predicted, float) - np.asarray(truth, float)
    residual = residual[np.isfinite(residual)]
    return {
        "robust_sigma": robust_sigma(residual),
        "bias": float(np.median(residual)),
        "rms": float(np.sqrt(np.mean(residual**2))),
        "n": int(residual.size),
    }


def coverage_within(predicted, sigma, truth, truth_error) -> float:
    """Fraction with |predicted - truth| < sqrt(sigma^2 + truth_error^2) (0.683 if calibrated)."""
    predicted, sigma = np.asarray(predicted, float), np.asarray(sigma, float)
    truth, truth_error = np.asarray(truth, float), np.asarray(truth_error, float)
    ok = np.isfinite(predicted) & np.isfinite(truth) & np.isfinite(truth_error)
    inside = np.abs(predicted - truth) < np.sqrt(sigma**2 + truth_error**2)
    return float(inside[ok].mean())
