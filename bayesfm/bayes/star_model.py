"""NumPyro models with the frozen emulator as likelihood, written for one star."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesfm.bayes.likelihood import CorrelatedTokens, star_whitener
from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.common.errors import DataError
from bayesfm.model.emulator import Emulator
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Scaling

__all__ = ["StarData", "anchored_star_data", "stacked_star_data", "star_model", "normalised_prior"]


class StarData(NamedTuple):
    """One star's observed emulator outputs.

    Attributes:
        values: Observed tokens [K] (0 where missing), in the emulator's output order.
        errors: Their 1-sigma errors [K] (1 where missing).
        mask: Which tokens are observed [K] (bool).
        whitener: Inverse Cholesky factor of the star's covariance in units of its token
            scales over the observed tokens (identity elsewhere) [K, K]
            (``likelihood.star_whitener``).
        emulator_sigma: The emulator's sigma [K] at the star's anchor labels (its amortized
            prediction), used as the emulator variance at every point of the posterior.
            Were it to follow the sampled labels, its log-determinant (34 tokens) would
            outweigh the fit and pull posteriors towards labels where the emulator claims
            to be precise (the dense red-clump region of the training set).
    """

    values: np.ndarray
    errors: np.ndarray
    mask: np.ndarray
    whitener: np.ndarray
    emulator_sigma: np.ndarray


def _observed(stars: StarTokens, row: int, emulator: Emulator):
    columns = stars.index(emulator.outputs)
    values, errors = stars.values[row, columns], stars.errors[row, columns]
    mask = np.isfinite(values)
    source = stars.source_id[row]
    if not mask.any():
        raise DataError(
            f"source {source} has none of the emulator's output tokens (XP flux, colours); "
            "there is nothing to fit"
        )
    bad = mask & ~(np.isfinite(errors) & (errors > 0))
    if bad.any():
        names = np.array(emulator.outputs)[bad].tolist()
        raise DataError(f"source {source}: tokens {names} have NaN, zero or negative errors")
    return (
        np.where(mask, values, 0.0).astype(np.float32),
        np.where(mask, errors, 1.0).astype(np.float32),
        mask,
    )


def stacked_star_data(stars: StarTokens, rows, emulator: Emulator, noise: NoiseModel, anchors):
    """``StarData`` of many stars stacked along a leading axis, for batched samplers.

    ``anchors``: physical labels [len(stars), 5] at which each star's emulator sigma is
    taken (only the usable rows' are used).

    Returns:
        (data, usable rows, problems): data covers the usable rows in order; problems maps
        each unusable row to the reason (a star without usable tokens does not stop a batch).
    """
    usable, problems, parts = [], {}, []
    for row in rows:
        try:
            parts.append(_observed(stars, row, emulator))
            usable.append(row)
        except DataError as err:
            problems[row] = str(err)
    if not parts:
        return None, usable, problems
    observed = (np.stack(field) for field in zip(*parts, strict=True))
    return (
        anchored_star_data(*observed, np.asarray(anchors)[usable], emulator, noise),
        usable,
        problems,
    )


def anchored_star_data(values, errors, mask, anchors, emulator: Emulator, noise: NoiseModel):
    """Stacked ``StarData`` from observed tokens [n, K] and anchors [n, n_in] (physical): the
    emulator's sigma and each star's covariance whitener at its anchor."""
    anchors = jnp.asarray(anchors, jnp.float32)
    _, sigma = jax.vmap(emulator.emulate)(anchors)
    if noise.label_error is None:
        jacobian = jnp.zeros(sigma.shape + (anchors.shape[1],))
    else:
        jacobian = jax.vmap(emulator.jacobian)(anchors)

    def whitener(m, e, sd, jac, anchor):
        return star_whitener(noise, m, e, sd, jac, anchor)

    whiteners = jax.vmap(whitener)(mask, errors, sigma, jacobian, anchors)
    return StarData(
        values, errors, mask, np.asarray(whiteners, np.float32), np.asarray(sigma, np.float32)
    )


def normalised_prior(prior: dist.Distribution, scaling: Scaling) -> dist.Distribution:
    """The prior over physical x [5] as a prior over z = scaling.normalise(x)."""
    loc, scale = scaling
    return dist.TransformedDistribution(
        prior, dist.transforms.AffineTransform(-loc / scale, 1.0 / scale)
    )


def star_model(
    data: StarData,
    emulator: Emulator,
    prior: dist.Distribution,
    noise: NoiseModel,
    scaling: Scaling,
    replicate: bool = False,
):
    """Labels and extinction of one star given its XP flux and colour tokens.

    The sampler works in normalised coordinates ``z = scaling.normalise(x)`` (well
    conditioned for NUTS); physical labels are deterministic sites named as the inputs.

    Args:
        data: The star's observed tokens.
        emulator: Frozen emulator ``x [5] -> (mean [K], sigma [K])``.
        prior: Distribution over the physical inputs x [5].
        noise: Correlated noise model over the emulator outputs.
        scaling: Normalisation of x [5] (the vocabulary's).
        replicate: Leave "obs" unobserved, so that it is drawn for every token (the
            posterior predictive, including the tokens the star lacks).
    """
    scaling = Scaling(jnp.asarray(scaling.loc), jnp.asarray(scaling.scale))
    z = numpyro.sample("z", normalised_prior(prior, scaling))
    x = scaling.physical(z)
    for i, name in enumerate(emulator.inputs):
        numpyro.deterministic(name, x[i])
    mean, _ = emulator.emulate(x)
    numpyro.sample(
        "obs",
        CorrelatedTokens(mean, data.emulator_sigma, data.errors, data.mask, data.whitener, noise),
        obs=None if replicate else data.values,
    )
