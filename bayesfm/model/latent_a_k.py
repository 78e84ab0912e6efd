"""Each training star's a_k as a parameter of the correction's fit.

The cleaned A_K a transformer's training fitted carry that transformer's a_k response: where
it is too weak (K giants: A(55)/A(K) 5 where G dwarfs give 6.8), they are too large. A
correction that changes the response then contradicts them. With ``latent_a_k`` each
training star's a_k moves by an offset, fitted with the correction under a N(0, sd) prior,
and the transformer's means follow it to first order (mean + d mean / d a_k x offset).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["LatentAK", "latent_a_k", "mean_and_a_k_slope"]


def mean_and_a_k_slope(plain, inputs, size: int = 1024):
    """(mean, d mean / d a_k) [N, K] of an emulator at physical ``inputs`` [N, 5]."""
    direction = jnp.zeros(len(LABEL_INPUTS)).at[LABEL_INPUTS.index("a_k")].set(1.0)

    def value_and_slope(x):
        return jax.jvp(lambda v: plain.emulate(v)[0], (x,), (direction,))

    batched = jax.jit(jax.vmap(value_and_slope))
    x = np.asarray(inputs, np.float32)
    parts = [batched(x[i : i + size]) for i in range(0, len(x), size)]
    return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in (0, 1))


class LatentAK(NamedTuple):
    """Per training star [N, ...]: how the correction's features and the normalised residual
    move per unit offset of a_k, and the offsets' prior sd."""

    feature_tangent: jnp.ndarray
    residual_tangent: jnp.ndarray
    sd: float

    def moved(self, features, residual, offset, rows):
        """(features, residual) of ``rows`` at a_k + ``offset`` [len(rows)]."""
        return (
            features + offset[:, None] * self.feature_tangent[rows],
            residual - offset[:, None] * self.residual_tangent[rows],
        )

    def posterior_sd(self, variance, present):
        """Each star's a_k uncertainty [N]: its curvature in the fitted offset, from the
        residuals' total ``variance`` [N, K] over the ``present`` tokens and the prior."""
        information = jnp.sum(jnp.where(present, self.residual_tangent**2 / variance, 0.0), 1)
        return np.asarray(1.0 / jnp.sqrt(information + 1.0 / self.sd**2))

    def prior(self, offset, n_tokens):
        """The offsets' -log prior per star and token (the NLL's units)."""
        return 0.5 * jnp.mean((offset / self.sd) ** 2) / n_tokens


def latent_a_k(plain, vocabulary, inputs, reads_means: bool, sd: float) -> LatentAK:
    """``LatentAK`` for training stars at physical ``inputs`` [N, 5] of the transformer's
    emulator ``plain`` (own a_k scale); ``sd``: the offsets' prior sd [transformer a_k]."""
    out_scale = np.asarray(vocabulary.scaling(plain.outputs).scale)
    in_scale = np.asarray(vocabulary.scaling(LABEL_INPUTS).scale)
    slope = mean_and_a_k_slope(plain, inputs)[1] / out_scale
    tangent = np.zeros((len(inputs), len(LABEL_INPUTS)))
    tangent[:, LABEL_INPUTS.index("a_k")] = 1.0 / in_scale[LABEL_INPUTS.index("a_k")]
    if reads_means:
        tangent = np.column_stack([tangent, slope])
    return LatentAK(jnp.asarray(tangent, jnp.float32), jnp.asarray(slope, jnp.float32), sd)
