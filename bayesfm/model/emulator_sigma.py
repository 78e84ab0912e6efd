"""Per-token factors on the emulator's sigma, so that the sigma means what it says.

The transformer learns its sigma with a Gaussian NLL, which matches the mean square of the
training residuals, tails included; for residuals with heavier tails than a Gaussian that
sigma is too wide for the bulk of stars. On the validation split, at each star's APOGEE labels
with its A_K fitted, each output token gets the factor f for which the median of
``|obs - mean| / sqrt(obs_error^2 + (f sigma)^2)`` is 0.6745, the median of |z| for a
Gaussian. ``validation/ship_model.py`` fits them and records them in the model's info as
``emulator_sigma_factors``; ``make_emulator`` applies them. Compare emulators each with its
own factors: the raw sigma is several times too wide, and a per-star A_K fit (chi-square + log
det) follows a wide sigma less closely.
"""

from dataclasses import replace

import numpy as np

from bayesfm.model.emulator import Emulator, make_emulator
from bayesfm.model.extinction_fit import fit_free_extinction, free_range_of
from bayesfm.model.sigma_scale import bisect_factor
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["fit_emulator_sigma_factors", "with_fitted_sigma_factors", "MEDIAN_ABS_Z"]

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


def with_fitted_sigma_factors(model, stars, verbose: bool = True):
    """``model`` recording the emulator sigma factors fitted on ``stars`` (validation stars)
    with all four APOGEE labels, each star's A_K fitted without a prior (as a posterior frees
    it, and as ``benchmarks/emulator_fidelity.py`` measures). A_K's fit depends on the sigma,
    so factors and A_K are fitted twice in turn, starting from the factors ``model`` has."""
    labels = stars.values[:, stars.index(LABEL_INPUTS[:4])]
    complete = np.isfinite(labels).all(axis=1)
    plain_info = {k: v for k, v in model.info.items() if k != "emulator_sigma_factors"}
    plain = make_emulator(replace(model, info=plain_info))
    columns = stars.index(plain.outputs)
    observed, errors = (a[complete][:, columns] for a in (stars.values, stars.errors))
    labels = labels[complete]
    for _ in range(2):
        emulator, a_k_range = make_emulator(model), free_range_of(model)
        a_k = fit_free_extinction(emulator, labels, observed, errors, verbose, a_k_range).a_k
        usable = np.isfinite(a_k)
        inputs = np.column_stack([labels, a_k])[usable]
        factors = fit_emulator_sigma_factors(plain, inputs, observed[usable], errors[usable])
        model = replace(model, info={**model.info, "emulator_sigma_factors": factors})
    if verbose:
        print(
            f"emulator sigma factors from {usable.sum()} stars: "
            f"{min(factors.values()):.2f}-{max(factors.values()):.2f} (median "
            f"{np.median(list(factors.values())):.2f})"
        )
    return model
