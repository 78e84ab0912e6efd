"""One extinction law for every star: the emulator's reddening, applied outside the transformer.

The transformer's own response to its a_k token is not physical: A(55)/A(K) taken from it
runs from 3.7 to 10 with a_k and star type (docs/model_card.md). With a law the emulator is

    mean_k(labels, A_K) = T_k(labels, a_ref) 10^(-0.4 r_k (A_K - A_ref))   (flux tokens)
    mean_k(labels, A_K) = T_k(labels, a_ref) + r_k (A_K - A_ref)            (colours)

(the flux sigma scales with its mean): T is the transformer queried at one a_k context
``a_ref`` that its training produced, A_ref the true A_K of that context, and r_k, the
change of token k's magnitude (colour) per magnitude of A_K, the same for every star.

``fit_extinction_law`` fits r on the train split's cleaned A_K (the transformer's a_k
scale), then puts r and A_ref on ak_targ's scale: ak_targ is an unbiased measurement of
A_K, so its regression on the A_K the law fits per star must have slope 1 and intercept 0
(the slope corrected for the fitted values' own noise).
"""

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.model.a_k_scale import AKScale

__all__ = ["ExtinctionLaw", "redden", "fit_response"]

CLIP_SIGMA = 4.0  # residuals beyond this many robust sigma leave a token's response fit


@dataclass(frozen=True)
class ExtinctionLaw:
    """The emulator's extinction law.

    Attributes:
        transformer_a_k: a_ref, the a_k context the transformer is queried at [its a_k scale].
        reference_a_k: A_ref, the true A_K [mag] of that context.
        a_k_scale: d(true A_K) / d(transformer a_k): maps the transformer's own a_k
            predictions onto the law's scale.
        response: Token name -> r, d(magnitude)/d A_K for flux tokens (of -2.5 log10 flux),
            d(colour)/d A_K for colours.
    """

    transformer_a_k: float
    reference_a_k: float
    a_k_scale: float
    response: dict

    def scale(self) -> AKScale:
        """The law's map of the transformer's a_k onto its own (ak_targ's) scale."""
        return AKScale(self.a_k_scale, self.reference_a_k - self.a_k_scale * self.transformer_a_k)

    def to_info(self) -> dict:
        return {
            "transformer_a_k": self.transformer_a_k,
            "reference_a_k": self.reference_a_k,
            "a_k_scale": self.a_k_scale,
            "response": dict(self.response),
        }

    @classmethod
    def from_info(cls, info: dict) -> "ExtinctionLaw":
        try:
            return cls(
                float(info["transformer_a_k"]),
                float(info["reference_a_k"]),
                float(info["a_k_scale"]),
                {str(k): float(v) for k, v in info["response"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(f"the model's extinction_law record is malformed ({error})") from error


def redden(emulate_at, law: ExtinctionLaw, outputs, is_flux, a_k_index: int):
    """``emulate(x) -> (mean, sigma)`` for inputs ``x`` [n_in] whose ``a_k_index`` entry is
    the true A_K [mag]: ``emulate_at`` (the transformer, same signature) at ``law``'s
    a_k context, reddened by the law (module docstring).

    Args:
        emulate_at: Transformer emulator, physical inputs [n_in] -> (mean [K], sigma [K]).
        law: The extinction law.
        outputs: Output token names [K].
        is_flux: [K] bool, True for flux tokens (multiplicative), False for colours.
        a_k_index: Position of A_K among the inputs.
    """
    missing = [name for name in outputs if name not in law.response]
    if missing:
        raise DataError(f"the extinction law has no response for {missing}")
    response = jnp.asarray([law.response[n] for n in outputs], jnp.float32)
    flux = jnp.asarray(is_flux)

    def emulate(x):
        x = jnp.asarray(x)
        at_reference = x.at[a_k_index].set(law.transformer_a_k)
        mean, sigma = emulate_at(at_reference)
        excess = (x[a_k_index] - law.reference_a_k) * response
        factor = 10.0 ** (-0.4 * excess)
        return (
            jnp.where(flux, mean * factor, mean + excess),
            jnp.where(flux, sigma * factor, sigma),
        )

    return emulate


def fit_response(delta_a_k, reference_mean, reference_sigma, observed, errors, is_flux):
    """r [K] by weighted least squares through the origin of each token's offset from the
    reference spectrum on ``delta_a_k``, clipping outliers (``CLIP_SIGMA``) twice.

    Args:
        delta_a_k: Each star's A_K minus the reference's [N] (any one scale) [mag].
        reference_mean, reference_sigma: The transformer at the reference context [N, K].
        observed, errors: The observed tokens and their errors [N, K] (NaN: absent).
        is_flux: [K] bool, True for flux tokens.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.sqrt(errors**2 + reference_sigma**2)
        offset = np.where(
            is_flux, -2.5 * np.log10(observed / reference_mean), observed - reference_mean
        )
        scale = np.where(is_flux, 2.5 / np.log(10) * total / np.abs(reference_mean), total)
    response = np.zeros(observed.shape[1])
    for k in range(observed.shape[1]):
        used = np.isfinite(offset[:, k]) & np.isfinite(scale[:, k]) & np.isfinite(delta_a_k)
        for _ in range(3):
            weight = 1.0 / scale[used, k] ** 2
            response[k] = np.sum(weight * delta_a_k[used] * offset[used, k]) / np.sum(
                weight * delta_a_k[used] ** 2
            )
            z = (offset[:, k] - response[k] * delta_a_k) / scale[:, k]
            robust = np.nanmedian(np.abs(z[used])) / 0.6745
            with np.errstate(invalid="ignore"):
                used = np.isfinite(z) & np.isfinite(delta_a_k) & (np.abs(z) < CLIP_SIGMA * robust)
    return response
