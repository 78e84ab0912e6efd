"""The pure training step: normalised stars, the Gaussian NLL, optimiser and jitted step."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bayesfm.model.batching import Batch
from bayesfm.model.train_config import TrainConfig
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Vocabulary

__all__ = [
    "NormalisedStars",
    "normalise_stars",
    "gaussian_nll",
    "make_optimizer",
    "make_train_step",
    "make_eval_loss",
]


@dataclass(frozen=True)
class NormalisedStars:
    """Normalised token arrays of one split; absent tokens hold 0 value / 1 error."""

    values: np.ndarray  # [N, T] float32
    errors: np.ndarray  # [N, T] float32
    present: np.ndarray  # [N, T] bool


def normalise_stars(tokens: StarTokens, vocabulary: Vocabulary) -> NormalisedStars:
    index = vocabulary.index(tokens.names)
    z, ze = vocabulary.normalise(tokens.values, tokens.errors, index)
    present = tokens.present
    return NormalisedStars(
        values=np.where(present, z, 0.0).astype(np.float32),
        errors=np.where(present, ze, 1.0).astype(np.float32),
        present=present,
    )


def gaussian_nll(mean, log_variance, value, error, mask, per_star=False, beta=0.0):
    """Gaussian NLL, variance = exp(log_variance) + error^2, over the masked entries [B, K]:
    their mean, or with ``per_star`` the mean over stars of each star's mean.

    With ``beta`` > 0 each entry is weighted by its variance^beta, held constant in the
    gradient (the beta-NLL of Seitzer et al. 2022): the plain NLL weights a mean's error by
    1 / variance, so entries the network calls uncertain stop being fitted; beta = 1 weights
    them as squared error does."""
    variance = jnp.exp(log_variance) + error**2
    nll = 0.5 * (jnp.log(2 * jnp.pi * variance) + (value - mean) ** 2 / variance)
    if beta:
        nll = nll * jax.lax.stop_gradient(variance) ** beta
    nll = jnp.where(mask, nll, 0.0)
    if not per_star:
        return jnp.sum(nll) / jnp.maximum(jnp.sum(mask), 1)
    count = jnp.sum(mask, axis=1)
    star_mean = jnp.sum(nll, axis=1) / jnp.maximum(count, 1)
    return jnp.sum(star_mean) / jnp.maximum(jnp.sum(count > 0), 1)


def _batch_loss(graphdef, params, batch: Batch, per_star=False, beta=0.0):
    model = nnx.merge(graphdef, params)
    mean, log_variance = model(
        batch.context_index,
        batch.context_value,
        batch.context_error,
        batch.context_mask,
        batch.target_index,
    )
    return gaussian_nll(
        mean,
        log_variance,
        batch.target_value,
        batch.target_error,
        batch.target_mask,
        per_star,
        beta,
    )


def make_optimizer(config: TrainConfig):
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=config.max_steps,
        end_value=config.learning_rate * 0.02,
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.clip_norm),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )
    return optimizer, schedule


def make_train_step(graphdef, optimizer, per_star=False, nll_beta=0.0):
    """A pure jitted ``(params, opt_state, batch) -> (params, opt_state, loss)``; the loss
    is ``gaussian_nll``'s with ``beta=nll_beta``."""

    @jax.jit
    def train_step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(
            lambda p: _batch_loss(graphdef, p, batch, per_star, nll_beta)
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def make_eval_loss(graphdef, per_star=False, nll_beta=0.0):
    return jax.jit(lambda params, batch: _batch_loss(graphdef, params, batch, per_star, nll_beta))
