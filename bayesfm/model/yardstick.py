"""Yardsticks: plain MLPs trained in minutes, measured beside the transformer.

A yardstick says whether the big model is under-trained: if a 3-minute MLP does better
on the same split, the data holds more than the transformer extracts.
``train_mlp_emulator`` is the labels -> spectrum yardstick, with an optional latent A_K
per training star (an offset from ak_targ under a N(0, prior_sd) prior, learned jointly
with the weights); it returns an ``Emulator`` like the transformer's.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.model.emulator import Emulator
from bayesfm.model.mlp import fit_on_minibatches, init_mlp, mlp
from bayesfm.tokens.labels import LABEL_INPUTS, NOMINAL_AK_ERROR
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Vocabulary

__all__ = ["MlpEmulatorConfig", "train_mlp_emulator"]


@dataclass(frozen=True)
class MlpEmulatorConfig:
    """The labels -> spectrum yardstick's recipe."""

    hidden: tuple = (256, 256, 256)
    steps: int = 20000
    batch_size: int = 512
    learning_rate: float = 2e-3  # peak of a one-cycle cosine schedule
    latent_extinction: bool = True
    prior_sd: float = NOMINAL_AK_ERROR  # [mag], of each star's A_K offset from ak_targ
    seed: int = 0


def train_mlp_emulator(
    train: StarTokens,
    vocabulary: Vocabulary,
    config: MlpEmulatorConfig = MlpEmulatorConfig(),
    progress: bool = True,
) -> Emulator:
    """Train the yardstick on ``train`` (stars lacking an input are left out).

    The loss per star is the Gaussian NLL summed over its observed outputs (variance
    exp(log-variance) + error^2, normalised units) plus, with latent extinction,
    0.5 (offset / prior_sd)^2; Adam minimises its batch mean.
    """
    outputs = vocabulary.names_in_group("xp_bp", "xp_rp", "colour")
    inputs_index, outputs_index = vocabulary.index(LABEL_INPUTS), vocabulary.index(outputs)
    x_raw = train.values[:, train.index(LABEL_INPUTS)]
    usable = np.isfinite(x_raw).all(axis=1)
    x, _ = vocabulary.normalise(x_raw[usable], x_raw[usable], inputs_index)
    y, e = vocabulary.normalise(
        train.values[usable][:, train.index(outputs)],
        train.errors[usable][:, train.index(outputs)],
        outputs_index,
    )
    present = np.isfinite(y)
    x, y, e = (
        jnp.asarray(a, jnp.float32) for a in (x, np.where(present, y, 0), np.where(present, e, 1))
    )
    present = jnp.asarray(present)
    ak_scale = float(vocabulary.scale[inputs_index[-1]])
    prior_sd = config.prior_sd / ak_scale  # normalised units
    n_out = len(outputs)

    params = {
        "layers": init_mlp(jax.random.PRNGKey(config.seed), [5, *config.hidden, 2 * n_out]),
        "offset": jnp.zeros(len(x)),
    }

    def loss(params, rows):
        offset = params["offset"][rows] if config.latent_extinction else jnp.zeros(len(rows))
        xb = x[rows].at[:, -1].add(offset)
        mean, log_var = mlp(params["layers"], xb)
        variance = jnp.exp(log_var) + e[rows] ** 2
        terms = 0.5 * (jnp.log(2 * jnp.pi * variance) + (y[rows] - mean) ** 2 / variance)
        per_star = jnp.sum(jnp.where(present[rows], terms, 0.0), axis=1)
        return jnp.mean(per_star + 0.5 * (offset / prior_sd) ** 2)

    params = fit_on_minibatches(loss, params, len(x), config, "MLP yardstick", progress)
    return _as_emulator(params["layers"], vocabulary, inputs_index, outputs_index, outputs)


def _as_emulator(layers, vocabulary, inputs_index, outputs_index, outputs) -> Emulator:
    in_loc, in_scale = (
        jnp.asarray(a[inputs_index], jnp.float32) for a in (vocabulary.loc, vocabulary.scale)
    )
    out_loc, out_scale = (
        jnp.asarray(a[outputs_index], jnp.float32) for a in (vocabulary.loc, vocabulary.scale)
    )

    def emulate(x):
        mean, log_var = mlp(layers, (jnp.asarray(x) - in_loc) / in_scale)
        return mean * out_scale + out_loc, jnp.exp(0.5 * log_var) * out_scale

    return Emulator(LABEL_INPUTS, tuple(outputs), jax.jit(emulate))
