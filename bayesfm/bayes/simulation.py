"""Stars simulated from the prior through the emulator, for simulation-based calibration."""

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.bayes.likelihood import CorrelatedTokens
from bayesfm.bayes.star_model import StarData

__all__ = ["simulate_stars"]


def simulate_stars(setup, templates: StarData, key):
    """True labels from the prior and data from the emulator's likelihood.

    Each simulated star copies one template star's observed tokens, errors and noise
    correlation (realistic noise and missing tokens), and replaces its values by a draw
    from the model's own likelihood at labels drawn from the prior.

    Args:
        setup: A ``StarInference``.
        templates: Real stars' ``StarData`` stacked [n, ...].
        key: PRNG key.

    Returns:
        (true labels x [n, 5] physical, simulated ``StarData``).
    """
    n = len(templates.values)
    prior_key, noise_key = jax.random.split(key)
    x = setup.prior.sample(prior_key, (n,))
    mean, sigma = jax.vmap(setup.emulator.emulate)(x)
    noisy = CorrelatedTokens(
        mean, sigma, templates.errors, templates.mask, templates.corr_chol, setup.noise
    ).sample(noise_key)
    values = jnp.where(templates.mask, noisy, 0.0)
    return np.asarray(x), templates._replace(values=np.asarray(values, np.float32))
