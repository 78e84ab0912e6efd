"""Variational posteriors for many stars at once: NumPyro SVI mapped over stars.

Each star gets its own guide (AutoNormal, AutoMultivariateNormal or AutoIAFNormal, as in
``run_svi``), initialised at its amortized prediction and optimised with Adam on the
ELBO; ``vmap`` runs a chunk of stars as one compiled program.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import SVI, Trace_ELBO

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision, shard_stars
from bayesfm.infer.settings import SviConfig
from bayesfm.infer.setup import prepare_stars
from bayesfm.infer.svi import GUIDES
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["batched_svi_draws", "run_batched_svi", "svi_one_star"]


def batched_svi_draws(setup, stars: StarTokens, key, config=SviConfig(), anchors=None):
    """Variational posterior draws [n, num_draws, 5] (physical) of every star in ``stars``,
    each guide started at the star's amortized prediction; NaN rows for stars without usable
    tokens. ``anchors``: labels [n, 5] at which the likelihood takes the emulator sigma
    (default: the amortized prediction)."""
    draws = np.full((len(stars), config.num_draws, len(LABEL_INPUTS)), np.nan, np.float32)
    prepared = prepare_stars(setup, stars, anchors)
    if not prepared.rows:
        return draws
    z_start = setup.scaling.normalise(prepared.start)
    fit_key, scatter_key = jax.random.split(key)
    z, _ = run_batched_svi(setup, prepared.data, z_start, fit_key, config)
    level = setup.noise.flux_noise_level(prepared.data)[:, None]
    draws[prepared.rows] = setup.noise.scatter_labels(setup.scaling.physical(z), scatter_key, level)
    return draws


@full_precision
def run_batched_svi(setup, data: StarData, z_start, key, config=SviConfig()):
    """Fit one guide per star and draw from it.

    Args:
        setup: A ``StarInference``.
        data: The stars' ``StarData`` stacked along a leading axis of n.
        z_start: Initial guide locations in normalised coordinates [n, 5].
        key: PRNG key; star i's result depends only on (key, i).
        config: Guide and optimiser settings.

    Returns:
        (z draws [n, num_draws, 5], final loss [n]: the mean ELBO loss of the last 100 steps).
    """
    n = len(z_start)
    keys = jax.random.split(key, n)
    fit = _compiled_fit(setup, config)
    z, loss = fit(*shard_stars((jnp.asarray(z_start, jnp.float32), data, keys)))
    return np.asarray(z)[:n], np.asarray(loss)[:n]


@functools.lru_cache(maxsize=4)
def _compiled_fit(setup, config: SviConfig):
    return jax.jit(jax.vmap(svi_one_star(setup, config)))


def svi_one_star(setup, config: SviConfig):
    """The pure one-star fit ``(z_start [5], data, key) -> (z draws [num_draws, 5], final
    loss)``; batched code maps it over stars."""
    model = setup.star_model

    def one_star(z0, data, key):
        guide = GUIDES[config.guide](
            model, init_loc_fn=numpyro.infer.init_to_value(values={"z": z0})
        )
        svi = SVI(model, guide, numpyro.optim.Adam(config.learning_rate), Trace_ELBO())
        fit_key, draw_key = jax.random.split(key)
        state = svi.init(fit_key, data)
        state, losses = jax.lax.scan(
            lambda s, _: svi.update(s, data), state, None, length=config.num_steps
        )
        draws = guide.sample_posterior(
            draw_key, svi.get_params(state), sample_shape=(config.num_draws,)
        )
        return draws["z"], jnp.mean(losses[-100:])

    return one_star
