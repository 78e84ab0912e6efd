"""Fitting the likelihood's noise model on validation stars with known labels.

Three parts (``bayesfm.likelihood`` defines the covariance they make up):

1. c and R: the scale and correlation of the normalised residuals
   (obs - emulator(labels)) / sqrt(obs_error^2 + sigma^2) at the stars' survey labels.
2. Each star's labels are then fitted to its tokens through the emulator (damped
   Gauss-Newton, no prior), giving the labels the spectrum prefers and their covariance.
3. The label-space error e: per input, the spread of (fitted - survey label) that neither
   the fit's own uncertainty nor the survey's reported error explains, i.e. the e that
   makes z = (fitted - survey) / sqrt(fit variance + survey error^2 + e^2) have a robust
   standard deviation of one. c and R are refitted at the fitted labels (each residual
   divided by sqrt(1 - its leverage), since a fit absorbs part of the noise; fit and c are
   iterated, as c weights the fit), so that R no longer counts the label offsets that e
   now describes.
4. The tails: the Student-t degrees of freedom nu that best describe the stars' chi-squares
   at their survey labels under the full covariance (under a multivariate t, chi2 / k
   follows an F(k, nu) distribution for k observed tokens).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from bayesfm.bayes.label_fit import fit_labels
from bayesfm.bayes.likelihood import (
    star_whitener,
    whitened_residual,
)
from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.common.metrics import extra_spread, robust_sigma
from bayesfm.model.emulator import Emulator

__all__ = [
    "fit_noise_model",
    "residual_noise_model",
    "label_error",
    "token_chi_square",
    "fit_tail_dof",
]

_SHRINKAGE = 0.05
_REWEIGHTINGS = 5
_TAIL_DOF_GRID = np.geomspace(1.0, 1000.0, 300)  # its last value stands for the Gaussian


def fit_noise_model(
    emulator: Emulator,
    inputs,
    observed,
    obs_error,
    reference=None,
    reference_error=None,
    label_error_split=None,
) -> NoiseModel:
    """The full noise model (c, R, the label-space error e, the tails nu) from validation stars.

    Args:
        emulator: The emulator whose outputs the noise model covers.
        inputs: The stars' labels [N, n_in] (physical) at which c and R are first fitted.
        observed, obs_error: Their observed output tokens and errors [N, K] (NaN if absent).
        reference, reference_error: The survey labels and reported errors [N, n_in] that e
            is calibrated against (NaN where a star lacks one); None: no label-space term.
        label_error_split: (input index, value): one e for the stars whose fitted labels are
            below that value of that input, one for the rest (None: one e for all).
    """
    noise = residual_noise_model(emulator, inputs, observed, obs_error)
    if reference is not None:
        noise = _with_label_error(
            emulator,
            noise,
            inputs,
            observed,
            obs_error,
            reference,
            reference_error,
            label_error_split,
        )
    input_error = None if reference is None else np.nan_to_num(reference_error)
    chi2, n_tokens = token_chi_square(emulator, noise, inputs, observed, obs_error, input_error)
    return dataclasses.replace(noise, tail_dof=fit_tail_dof(chi2, n_tokens))


def _with_label_error(
    emulator, noise, inputs, observed, obs_error, reference, reference_error, split
):
    """``noise`` refitted at each star's best-fit labels, with the label-space error e (one
    row, or one per side of ``split``, assigned by the fitted labels)."""
    # fits with independent tokens, where the hat matrix gives each token's leverage; c
    # weights the fit, so the two are iterated
    fitted = inputs
    for _ in range(_REWEIGHTINGS):
        independent = NoiseModel(noise.names, noise.error_scale, np.eye(len(noise.names)))
        fitted, _, leverage = fit_labels(emulator, independent, fitted, observed, obs_error)
        noise = residual_noise_model(emulator, fitted, observed, obs_error, leverage)
    fitted, variance, _ = fit_labels(emulator, noise, fitted, observed, obs_error)
    if split is None:
        error = label_error(fitted, variance, reference, reference_error)
    else:
        below = fitted[:, split[0]] < split[1]
        error = np.stack(
            [
                label_error(fitted[g], variance[g], reference[g], reference_error[g])
                for g in (below, ~below)
            ]
        )
    return NoiseModel(
        noise.names,
        noise.error_scale,
        noise.correlation,
        label_error=error,
        label_error_split=split,
    )


def residual_noise_model(
    emulator: Emulator, inputs, observed, obs_error, leverage=None
) -> NoiseModel:
    """c and R from the normalised residuals at ``inputs`` [N, n_in]; ``leverage`` [N, K]:
    each token's leverage if ``inputs`` were fitted to these tokens (None: they were not)."""
    mean, sigma = jax.vmap(emulator.emulate)(jnp.asarray(inputs, jnp.float32))
    r = (observed - np.asarray(mean)) / np.sqrt(obs_error**2 + np.asarray(sigma) ** 2)
    if leverage is not None:
        r = r / np.sqrt(np.clip(1.0 - leverage, 0.05, 1.0))
    c = np.array([robust_sigma(r[:, k]) for k in range(r.shape[1])])
    u = np.clip(r / c, -5, 5)
    k = u.shape[1]
    corr = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            ok = np.isfinite(u[:, i]) & np.isfinite(u[:, j])
            corr[i, j] = corr[j, i] = np.corrcoef(u[ok, i], u[ok, j])[0, 1]
    corr = (1 - _SHRINKAGE) * corr + _SHRINKAGE * np.eye(k)
    eigenvalues, vectors = np.linalg.eigh(corr)  # pairwise estimates: make it positive definite
    corr = vectors @ np.diag(np.maximum(eigenvalues, 1e-3)) @ vectors.T
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    return NoiseModel(emulator.outputs, c, corr)


def token_chi_square(
    emulator: Emulator, noise: NoiseModel, inputs, observed, obs_error, input_error=None
):
    """(chi-square [N], observed tokens [N]) of each star's tokens [N, K] (NaN if absent) at
    its labels ``inputs`` [N, n_in] (physical) under ``noise``'s full covariance;
    ``input_error`` [N, n_in]: those labels' own errors (None: exact labels)."""
    mask = np.isfinite(observed)
    values = np.where(mask, observed, 0.0).astype(np.float32)
    errors = np.where(mask, obs_error, 1.0).astype(np.float32)
    scale = jnp.asarray(noise.total_scale)
    x = jnp.asarray(inputs, jnp.float32)
    input_error = jnp.zeros_like(x) if input_error is None else jnp.asarray(input_error, x.dtype)

    def one_star(x, x_error, y, e, m):
        mean, sigma = emulator.emulate(x)
        jacobian = None if noise.label_error is None else emulator.jacobian(x)
        whitener = star_whitener(noise, m, e, sigma, jacobian, x, x_error)
        solved, _ = whitened_residual(y, e, m, whitener, mean, sigma, scale)
        return jnp.sum(solved**2)

    chi2 = jax.jit(jax.vmap(one_star))(x, input_error, values, errors, jnp.asarray(mask))
    return np.asarray(chi2, float), mask.sum(axis=1)


def fit_tail_dof(chi2, n_tokens) -> float | None:
    """Maximum-likelihood Student-t degrees of freedom nu for chi-squares [N] of
    ``n_tokens`` [N] tokens each (chi2 / k ~ F(k, nu)); None where a Gaussian fits best."""
    ok = np.isfinite(chi2) & (n_tokens > 0)
    ratio, k = chi2[ok] / n_tokens[ok], n_tokens[ok]
    log_l = [np.sum(stats.f.logpdf(ratio, k, nu)) for nu in _TAIL_DOF_GRID]
    best = int(np.argmax(log_l))
    return None if best == len(_TAIL_DOF_GRID) - 1 else float(_TAIL_DOF_GRID[best])


def label_error(fitted, variance, reference, reference_error) -> np.ndarray:
    """e [n_in]: per input, the extra spread that makes the z of fitted against reference
    labels have a robust standard deviation of one (0 where it is already below one, or where
    no star has a reference)."""
    error = np.zeros(fitted.shape[1])
    for i in range(fitted.shape[1]):
        ok = np.isfinite(reference[:, i]) & np.isfinite(reference_error[:, i])
        ok &= np.isfinite(fitted[:, i]) & np.isfinite(variance[:, i])
        if not ok.any():
            continue
        offset = fitted[ok, i] - reference[ok, i]
        error[i] = extra_spread(offset, variance[ok, i] + reference_error[ok, i] ** 2)
    return error
