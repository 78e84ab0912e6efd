"""Per-token factors on the emulator's sigma, so that the sigma means what it says.

The transformer learns its sigma with a Gaussian NLL, which matches the mean square of the
training residuals, tails included; for residuals with heavier tails than a Gaussian that
sigma is too wide for the bulk of stars. On the validation split, at each star's APOGEE labels
with its A_K fitted, each output token gets the factor f for which the median of
``|obs - mean| / sqrt(obs_error^2 + (f sigma)^2)`` is 0.6745, the median of |z| for a
Gaussian. ``validation/ship_model.py`` fits them and records them in the model's info as
``emulator_sigma_factors``; ``make_emulator`` applies them.
"""

import numpy as np

from bayesfm.model.emulator import Emulator
from bayesfm.model.sigma_scale import bisect_factor

__all__ = ["fit_emulator_sigma_factors", "MEDIAN_ABS_Z"]

MEDIAN_ABS_Z = 0.6745  # median of |z| for a standard Gaussian


def fit_emulator_sigma_factors(emulator: Emulator, inputs, observed, errors) -> dict:
    """Token name -> factor on ``emulator``'s sigma, fitted at ``inputs`` [N, n_in] (physical)
    to the ``observed`` tokens [N, K] (NaN where absent) with their ``errors`` [N, K].

    A token whose residuals exceed the target median even at the largest factor (20), or stay
    below it at the smallest (0.05), gets that end of the range."""
    mean, sigma = emulator.batch(inputs)
    residual = np.abs(np.asarray(observed) - mean)
    errors = np.asarray(errors)
    factors = {}
    for k, name in enumerate(emulator.outputs):
        present = np.isfinite(residual[:, k]) & np.isfinite(errors[:, k])
        if not present.any():
            continue
        factors[name] = _median_matching_factor(
            residual[present, k], errors[present, k], sigma[present, k]
        )
    return factors


def _median_matching_factor(residual, error, sigma) -> float:
    """The median of |r| / sqrt(e^2 + (f s)^2) falls as f grows."""
    return bisect_factor(
        lambda f: np.median(residual / np.sqrt(error**2 + (f * sigma) ** 2)) > MEDIAN_ABS_Z
    )
