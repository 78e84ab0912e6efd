"""The likelihood of observed XP flux and colour tokens given the emulator's prediction.

Treats what DESIGN.md warns about: the flux tokens' errors are correlated (one set of ~110
XP coefficients makes every pixel) and the emulator's residuals are smooth in wavelength.
A likelihood that takes tokens as independent would count the same information several
times over. The ``NoiseModel`` (``bayesfm.bayes.noise_model``) is a full covariance fitted on
validation stars:

    Sigma = diag(s) (R + G diag(e^2) G^T) diag(s),   s_k = c_k sqrt(obs_error_k^2 + sigma_k^2)

where c_k rescales each token's total error, R is the correlation of the normalised
residuals, and G = J / s is the emulator's Jacobian with respect to its inputs (at the
star's anchor) in units of s. The last term is the emulator's error expressed in label
space: its spectrum at labels x matches a star whose survey labels are x only up to a
label offset of 1-sigma e (per input; optionally one e for each side of a split in one label,
e.g. giants and dwarfs, chosen by the star's anchor). With ``tail_dof`` nu the tokens follow a
multivariate Student-t with scale matrix Sigma instead of a Gaussian (a Gaussian whose
covariance is Sigma times a per-star factor drawn from nu / chi-square_nu): the validation
stars' chi-squares at their survey labels have far heavier tails than a Gaussian allows,
and the t widens the posterior of a star the emulator fits badly instead of trusting its
spectrum as much as any other's. Missing tokens are removed exactly: their rows and
columns become the identity and their residual zero, which adds nothing to the
log-density. Everything but the residual is fixed per star, so each star's whitener W, the
inverse of its covariance's Cholesky factor L, is computed once, and each evaluation needs
one product W u: neither a factorisation nor a triangular solve (on a CPU whose cores other
processes share, XLA's triangular solve takes 1.4-1.6x the product's time;
``benchmarks/target_density.py``).
"""

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

from bayesfm.bayes.noise_model import NoiseModel

__all__ = [
    "CorrelatedTokens",
    "lower_triangular_inverse",
    "masked_correlation_whitener",
    "star_whitener",
    "log_likelihood",
    "whitened_residual",
]


def lower_triangular_inverse(lower):
    """The inverse [K, K] of a lower-triangular matrix, itself lower-triangular."""
    identity = jnp.broadcast_to(jnp.eye(lower.shape[-1], dtype=lower.dtype), lower.shape)
    return jax.scipy.linalg.solve_triangular(lower, identity, lower=True)


def masked_correlation_whitener(correlation, mask):
    """Whitener W [K, K] of R with masked tokens' rows and columns set to the identity: the
    inverse of its Cholesky factor L (R = L L^T), so that W u is white for u ~ N(0, R).

    It depends only on which tokens a star has, so it is computed once per star, not in
    every gradient evaluation.
    """
    both = mask[:, None] & mask[None, :]
    chol = jnp.linalg.cholesky(jnp.where(both, correlation, jnp.eye(len(mask))))
    return lower_triangular_inverse(chol)


def star_whitener(
    noise: NoiseModel, mask, obs_error, sigma, jacobian=None, anchor=None, input_error=None
):
    """Whitener [K, K] of one star's covariance in units of its token scales s: R plus
    the label-space term (needs the emulator's ``jacobian`` [K, n_in] at the star's
    ``anchor`` [n_in], physical), masked tokens' rows and columns set to the identity.
    ``input_error`` [n_in]: the uncertainty of the labels the emulator is evaluated at, when
    they are measured (a survey's reported errors), added in quadrature to the label-space
    error."""
    covariance = jnp.asarray(noise.correlation)
    if noise.label_error is not None:
        label_error = noise.label_error_at(anchor)
        if input_error is not None:
            label_error = jnp.sqrt(label_error**2 + input_error**2)
        scale = jnp.asarray(noise.total_scale) * jnp.sqrt(obs_error**2 + sigma**2)
        g = jnp.asarray(jacobian) / scale[:, None] * label_error[None, :]
        covariance = covariance + g @ g.T
    return masked_correlation_whitener(covariance, mask)


def whitened_residual(observed, obs_error, mask, whitener, mean, sigma, error_scale):
    """(whitened residual [K], per-token scale [K]) under the noise model (see
    ``log_likelihood`` for the arguments): the residual's squared norm is its chi-square."""
    scale = error_scale * jnp.sqrt(obs_error**2 + sigma**2)
    u = jnp.where(mask, (observed - mean) / scale, 0.0)
    return whitener @ u, scale


def log_likelihood(observed, obs_error, mask, whitener, mean, sigma, error_scale, tail_dof=None):
    """Log-density of the observed tokens [K] under the correlated noise model.

    Args:
        observed: Observed token values [K] (anything where ``mask`` is False).
        obs_error: Their 1-sigma errors [K].
        mask: Which tokens are observed [K] (bool).
        whitener: ``star_whitener`` [K, K].
        mean, sigma: Emulator prediction [K] in the same units.
        error_scale: The noise model's per-token factors c [K].
        tail_dof: Student-t degrees of freedom nu (None: Gaussian).
    """
    solved, scale = whitened_residual(observed, obs_error, mask, whitener, mean, sigma, error_scale)
    chi2, n = jnp.sum(solved**2), jnp.sum(mask)
    log_det = -jnp.sum(jnp.log(jnp.diag(whitener))) + jnp.sum(jnp.where(mask, jnp.log(scale), 0.0))
    if tail_dof is None:
        return -0.5 * chi2 - log_det - 0.5 * n * jnp.log(2 * jnp.pi)
    nu = tail_dof
    normalisation = gammaln(0.5 * (nu + n)) - gammaln(0.5 * nu) - 0.5 * n * jnp.log(nu * jnp.pi)
    return normalisation - log_det - 0.5 * (nu + n) * jnp.log1p(chi2 / nu)


class CorrelatedTokens(dist.Distribution):
    """Observed tokens [K] around the emulator mean under the correlated noise model.

    ``log_prob`` is ``log_likelihood`` (missing tokens drop out). ``sample`` draws every
    token from the same distribution: observed ones as replicated data (with their noise),
    missing ones as the true value (emulator uncertainty only, independent across missing
    tokens): the posterior predictive of unobserved tokens. With a Student-t noise model
    each draw's deviation is scaled by one factor sqrt(nu / chi-square_nu).
    """

    support = constraints.real_vector

    def __init__(
        self, mean, sigma, obs_error, mask, whitener, noise: NoiseModel, validate_args=None
    ):
        batch_shape = jnp.shape(mean)[:-1]  # e.g. a plate of stars
        k = jnp.shape(mean)[-1]
        self.loc, self.sigma = mean, sigma
        self.obs_error = jnp.broadcast_to(obs_error, batch_shape + (k,))
        self.obs_mask = jnp.broadcast_to(mask, batch_shape + (k,))
        self.whitener = jnp.broadcast_to(whitener, batch_shape + (k, k))
        self.noise = noise
        super().__init__(batch_shape=batch_shape, event_shape=(k,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        error = jnp.where(self.obs_mask, self.obs_error, 0.0)
        scale = jnp.asarray(self.noise.total_scale) * jnp.sqrt(error**2 + self.sigma**2)
        shape = sample_shape + self.batch_shape + self.event_shape
        normal_key, tail_key = jax.random.split(key)
        white = jax.random.normal(normal_key, shape)
        chol = lower_triangular_inverse(self.whitener)
        deviation = scale * jnp.einsum("...kj,...j->...k", chol, white)
        nu = self.noise.tail_dof
        if nu is not None:
            precision = jax.random.gamma(tail_key, 0.5 * nu, shape[:-1]) / (0.5 * nu)
            deviation = deviation / jnp.sqrt(precision)[..., None]
        return self.loc + deviation

    def log_prob(self, value):
        k = self.event_shape[0]
        shape = jnp.broadcast_shapes(jnp.shape(value)[:-1], self.batch_shape)
        flat = [
            jnp.broadcast_to(a, shape + (k,)).reshape(-1, k)
            for a in (value, self.obs_error, self.obs_mask, self.loc, self.sigma)
        ]
        whitener = jnp.broadcast_to(self.whitener, shape + (k, k)).reshape(-1, k, k)
        error_scale = jnp.asarray(self.noise.total_scale)

        def one_star(v, e, m, c, mu, sd):
            return log_likelihood(v, e, m, c, mu, sd, error_scale, self.noise.tail_dof)

        rows = (flat[0], flat[1], flat[2], whitener, flat[3], flat[4])
        return jax.vmap(one_star)(*rows).reshape(shape)
