"""How strongly a star's own tokens prefer one set of labels to another: the likelihood
ratio through the emulator and the noise model (no prior)."""

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.bayes.likelihood import CorrelatedTokens
from bayesfm.infer.setup import prepare_stars
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["label_misfit"]


def label_misfit(setup, stars: StarTokens, preferred, reference) -> np.ndarray:
    """Per star, 2 [log L(preferred) - log L(reference)].

    With correct labels as ``reference`` and the posterior median as ``preferred``, this
    follows roughly a chi-square with 5 degrees of freedom; much larger values say the
    emulator cannot reproduce the star's tokens at the reference labels.

    Args:
        setup: A ``StarInference``.
        stars: The stars whose tokens are compared.
        preferred, reference: Labels [n, 5] physical (``LABEL_INPUTS`` order).

    Returns:
        [n]; NaN where a star has no usable tokens or either label set is incomplete.
    """
    prepared = prepare_stars(setup, stars)
    rows = prepared.rows
    x = np.stack([np.asarray(preferred)[rows], np.asarray(reference)[rows]], axis=1)
    complete = np.isfinite(x).all(axis=(1, 2))
    x = np.where(complete[:, None, None], x, np.asarray(setup.scaling.loc))

    def log_likelihoods(labels, data):
        mean, _ = jax.vmap(setup.emulator.emulate)(labels)
        tokens = CorrelatedTokens(
            mean, data.emulator_sigma, data.errors, data.mask, data.whitener, setup.noise
        )
        return tokens.log_prob(data.values)

    log_l = jax.jit(jax.vmap(log_likelihoods))(jnp.asarray(x, jnp.float32), prepared.data)
    log_l = np.asarray(log_l)
    out = np.full(len(stars), np.nan)
    out[rows] = np.where(complete, 2 * (log_l[:, 0] - log_l[:, 1]), np.nan)
    return out
