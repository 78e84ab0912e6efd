"""One extinction response for every star: a penalty the emulator's correction can be fitted with.

Extinction dims each flux token's magnitude by r_k per magnitude of A_K, the same r for every
star and at every A_K (up to one constant per star: the tokens are divided by the star's RP
flux). The transformer's own a_k response is neither (docs/model_card.md): A(55)/A(K) from it
runs from 5 for K giants to 6.8 for G dwarfs at A_K = 0.05 mag and changes with A_K. An
extinction law imposed outright costs the posteriors 15-30% of their accuracy; this penalty
asks the correction for one response softly instead. A law says

    d mean_k / d a_k = -mean_k (g_k + c) / 1.0857

with g one curve [mag per unit a_k] for all stars and c one constant per star. The penalty
is the mean square of each flux token's departure from it, in the star's observational
errors per unit a_k, over the tolerance, c fitted per point by least squares:

    penalty = mean_k ((d mean_k / d a_k + mean_k (g_k + c) / 1.0857) / error_k / tolerance)^2

taken at each training star's labels, at its own a_k and at one drawn between the training
a_k's 2nd percentile and its own (a_k on the transformer's scale). Weighing by the errors
counts only departures the data could see: a faint token's magnitude response is ill-defined
and tells the fit nothing. g is fitted with the correction, from the transformer's median
response. Colours are left free: a broad band's colour excess per A_K depends on the star's
spectrum.

A softer form asks only for the scale (``scale_term``): each point's response, fitted as
s x A(lambda)/A(55) of Fitzpatrick (2019) + c by weighted least squares, gives A(55)/A(K) = s,
and the penalty is its fractional departure from the value all stars share at that a_k, over
a tolerance. That value may change with a_k (``shared_scale``): the transformer's a_k is
stretched against A_K, and one value for every a_k too costs the reddened stars' posteriors
their accuracy. The curve's shape stays free, as broad bins' responses depend a little on the
star's spectrum.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.model.fitzpatrick import fitzpatrick_on_tokens, token_centres_nm
from bayesfm.model.latent_a_k import mean_and_a_k_slope
from bayesfm.model.mlp import mlp
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.vocabulary import Scaling

__all__ = [
    "response_term",
    "scale_term",
    "response_points",
    "magnitude_response",
    "law_departure",
    "point_scale",
    "shared_scale",
]

_MAG = 2.5 / np.log(10.0)  # d(-2.5 log10 f) = -_MAG df / f
# the scale's fit weighs a token by 1 / (_ERROR_SHARE x error + flux / _SNR_CAP)
_SNR_CAP, _ERROR_SHARE = 20.0, 0.1
_LOW_QUANTILE = 0.02  # the drawn a_k lies between this training quantile and the star's own


def response_term(plain, vocabulary, inputs, errors, reads_means: bool, tolerance: float, rng):
    """(curve [F], penalty(layers, curve, rows)) for the correction's fit on training stars
    with physical ``inputs`` [N, 5] and observational ``errors`` [N, K] of ``plain.outputs``
    (NaN: absent, left out): the curve g starts at the transformer's median response.

    Args:
        plain: The transformer's emulator (``Emulator``, no correction, own a_k scale).
        vocabulary: The model's vocabulary.
        reads_means: Whether the correction reads the transformer's means.
        tolerance: The penalty's scale [observational errors per unit a_k].
        rng: numpy Generator for the drawn a_k.
    """
    points, weight, flux, out_scaling = _penalty_points(
        plain, vocabulary, inputs, errors, reads_means, rng
    )
    unshifted = magnitude_response(_no_shift(plain), points, out_scaling, flux)

    def penalty(layers, curve, rows):
        at = ResponsePoints(*(a[rows] for a in points))
        departure = law_departure(
            lambda f: mlp(layers, f)[0], at, out_scaling, flux, curve, weight[rows]
        )
        return jnp.mean((departure / tolerance) ** 2)

    return jnp.median(unshifted, axis=(0, 1)), penalty


def scale_term(plain, vocabulary, inputs, errors, reads_means: bool, tolerance: float, rng):
    """(coefficients [3], penalty(layers, coefficients, rows)): ``response_term``'s arguments,
    the penalty the mean square of each point's A(55)/A(K) (``point_scale``) over the shared
    one at its a_k (``shared_scale``), minus one, over ``tolerance`` (a fraction); the shared
    one starts flat at the transformer's median.

    The fit weighs each flux token by 1 / (0.1 x error + flux / 20): tokens with S/N above
    about 2 count alike, as in the report's fit of magnitudes, and fainter ones by their S/N,
    since near-zero fluxes leave a magnitude response undefined."""
    points, weight, flux, out_scaling = _penalty_points(
        plain, vocabulary, inputs, errors, reads_means, rng
    )
    loc, scale = (np.asarray(a)[flux] for a in out_scaling)
    brightness = np.abs(loc + scale * np.asarray(points.mean))
    weight = 1.0 / (_ERROR_SHARE / weight + brightness / _SNR_CAP)
    shape = jnp.asarray(
        fitzpatrick_on_tokens(
            token_centres_nm(np.asarray(plain.outputs)[flux]), vocabulary.binning.width_nm
        ),
        jnp.float32,
    )
    unshifted = point_scale(_no_shift(plain), points, out_scaling, flux, shape, weight)

    def penalty(layers, coefficients, rows):
        at = ResponsePoints(*(a[rows] for a in points))
        scale = point_scale(lambda f: mlp(layers, f)[0], at, out_scaling, flux, shape, weight[rows])
        shared = shared_scale(coefficients, at.features)
        return jnp.mean(((scale / shared - 1.0) / tolerance) ** 2)

    return jnp.array([jnp.median(unshifted), 0.0, 0.0]), penalty


def shared_scale(coefficients, features):
    """The A(55)/A(K) shared by every star at each point's a_k [...]: a quadratic in the
    normalised a_k of ``features`` [..., n] (the transformer's a_k need not be linear in A_K,
    so the scale per unit a_k may change with it; at one a_k it is one for all stars)."""
    a_k = features[..., LABEL_INPUTS.index("a_k")]
    return coefficients[0] + coefficients[1] * a_k + coefficients[2] * a_k**2


def _penalty_points(plain, vocabulary, inputs, errors, reads_means, rng):
    """(``response_points``, weights 1 / error [N, 2, F], flux [K] bool, output scaling)."""
    flux_names = set(vocabulary.names_in_group("xp_bp", "xp_rp"))
    flux = np.array([name in flux_names for name in plain.outputs])
    in_scaling, out_scaling = vocabulary.scaling(LABEL_INPUTS), vocabulary.scaling(plain.outputs)
    points = response_points(plain, inputs, in_scaling, out_scaling, flux, reads_means, rng)
    weight = 1.0 / np.where(np.isfinite(errors[:, flux]), errors[:, flux], np.inf)
    weight = jnp.asarray(np.repeat(weight[:, None], 2, axis=1), jnp.float32)
    return points, weight, flux, out_scaling


def _no_shift(plain):
    """A shift of nothing: the transformer's own response."""
    n_out = len(plain.outputs)
    return lambda f: jnp.zeros((*f.shape[:-1], n_out))


class ResponsePoints(NamedTuple):
    """Where the penalty is taken, two points per training star [N, 2, ...].

    Attributes:
        features: The correction's normalised inputs (labels, then the transformer's means).
        tangent: d features / d a_k (physical a_k).
        mean: The transformer's normalised means of the flux tokens.
        d_mean: Their derivative d mean / d a_k.
    """

    features: jnp.ndarray
    tangent: jnp.ndarray
    mean: jnp.ndarray
    d_mean: jnp.ndarray


def response_points(plain, inputs, in_scaling, out_scaling, flux, reads_means, rng):
    """The penalty's points for training stars with physical ``inputs`` [N, 5].

    Args:
        plain: The transformer's emulator (``Emulator``, no correction, own a_k scale).
        in_scaling, out_scaling: Normalisation of the five labels and of ``plain.outputs``.
        flux: [K] bool, the flux tokens among ``plain.outputs``.
        reads_means: Whether the correction reads the transformer's means.
        rng: numpy Generator for the drawn a_k.
    """
    a_k_index = LABEL_INPUTS.index("a_k")
    own = inputs[:, a_k_index]
    low = np.quantile(own, _LOW_QUANTILE)
    drawn = np.where(own > low, rng.uniform(low, np.maximum(own, low)), own)
    both = np.stack([inputs, inputs], axis=1)
    both[:, 1, a_k_index] = drawn
    direction = np.eye(len(LABEL_INPUTS))[a_k_index]
    flat = both.reshape(-1, len(LABEL_INPUTS)).astype(np.float32)
    mean, d_mean = mean_and_a_k_slope(plain, flat)
    d_mean = d_mean / np.asarray(out_scaling.scale)
    mean = np.asarray(out_scaling.normalise(mean))
    features = np.asarray(in_scaling.normalise(flat))
    tangent = np.tile(direction / np.asarray(in_scaling.scale), (len(flat), 1))
    if reads_means:
        features = np.column_stack([features, mean])
        tangent = np.column_stack([tangent, d_mean])
    shape = (len(inputs), 2, -1)
    return ResponsePoints(
        *(
            jnp.asarray(a.reshape(shape), jnp.float32)
            for a in (features, tangent, mean[:, flux], d_mean[:, flux])
        )
    )


def _flux_and_slope(shift, points: ResponsePoints, out_scaling: Scaling, flux):
    """The flux tokens' physical means and d mean / d a_k [..., F] of the transformer's means
    plus ``shift(features) -> [..., K]`` (normalised units), at ``points``."""
    value, slope = jax.jvp(shift, (points.features,), (points.tangent,))
    loc, scale = (jnp.asarray(a)[flux] for a in out_scaling)
    return loc + scale * (points.mean + value[..., flux]), scale * (
        points.d_mean + slope[..., flux]
    )


def magnitude_response(shift, points: ResponsePoints, out_scaling: Scaling, flux):
    """J [..., F]: d(-2.5 log10 mean)/d a_k of the flux tokens (``_flux_and_slope``)."""
    mean, slope = _flux_and_slope(shift, points, out_scaling, flux)
    return -_MAG * slope / mean


def law_departure(shift, points: ResponsePoints, out_scaling: Scaling, flux, curve, weight):
    """Each flux token's departure [..., F] from the law with response ``curve`` [F] (module
    docstring), times ``weight`` [..., F] (1 / error), the star's constant c fitted."""
    mean, slope = _flux_and_slope(shift, points, out_scaling, flux)
    base = weight * (slope + mean * curve / _MAG)
    lever = weight * mean / _MAG
    c = -jnp.sum(base * lever, axis=-1, keepdims=True) / jnp.sum(lever**2, axis=-1, keepdims=True)
    return base + lever * c


def point_scale(shift, points: ResponsePoints, out_scaling: Scaling, flux, shape, weight):
    """A(55)/A(K) [...] at each point: s of the fit d mean_k / d a_k = -mean_k (s shape_k + c)
    / 1.0857, by least squares in ``weight`` (1 / error) units, with ``shape`` [F]
    A(lambda)/A(55)."""
    mean, slope = _flux_and_slope(shift, points, out_scaling, flux)
    lever = weight * mean / _MAG
    a, b, y = lever * shape, lever, -weight * slope
    aa, ab, bb = (jnp.sum(u * v, axis=-1) for u, v in ((a, a), (a, b), (b, b)))
    ay, by = jnp.sum(a * y, axis=-1), jnp.sum(b * y, axis=-1)
    return (bb * ay - ab * by) / (aa * bb - ab**2)
