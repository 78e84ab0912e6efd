"""Stars simulated from the prior through the emulator, for simulation-based calibration."""

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.bayes.likelihood import CorrelatedTokens
from bayesfm.bayes.star_model import StarData, anchored_star_data

__all__ = ["simulate_stars"]


def simulate_stars(setup, templates: StarData, key):
    """True labels from the prior and data from the emulator's likelihood at those labels.

    Each simulated star copies one template star's errors and missing tokens (realistic
    noise levels and gaps) and draws its values from the model's own likelihood at labels
    drawn from the prior: the emulator's mean and sigma, and the covariance (label-space
    term included), all taken at the true labels. Inference anchored at the true labels
    therefore uses exactly the distribution the data came from. The labels returned are the
    true labels on the survey's scale: plus the noise model's label scatter, as the
    posterior's draws are.

    Args:
        setup: A ``StarInference``.
        templates: Real stars' ``StarData`` stacked [n, ...].
        key: PRNG key.

    Returns:
        (true survey-scale labels [n, 5] physical, simulated ``StarData`` anchored at the
        emulator's labels x behind them).
    """
    n = len(templates.values)
    prior_key, noise_key, scatter_key = jax.random.split(key, 3)
    x = setup.prior.sample(prior_key, (n,))
    at_truth = anchored_star_data(
        templates.values, templates.errors, templates.mask, x, setup.emulator, setup.noise
    )
    mean, _ = jax.vmap(setup.emulator.emulate)(x)
    noisy = CorrelatedTokens(
        mean,
        at_truth.emulator_sigma,
        at_truth.errors,
        at_truth.mask,
        at_truth.whitener,
        setup.noise,
    ).sample(noise_key)
    values = np.asarray(jnp.where(at_truth.mask, noisy, 0.0), np.float32)
    simulated = at_truth._replace(values=values)
    level = setup.noise.flux_noise_level(simulated)  # the class the posterior's draws get
    return setup.noise.scatter_labels(x, scatter_key, level), simulated
