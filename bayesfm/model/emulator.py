"""The emulator: a frozen, pure JAX function from labels (+ extinction) to predicted tokens.

``make_emulator(model, inputs, outputs)`` closes over the trained weights: the result
``emulate(x) -> (mean, sigma)`` takes one star's inputs in physical units and has no
state, no ``numpyro.param`` sites and nothing to train. It is jit-, grad- and
vmap-friendly, which is what a NumPyro likelihood needs.

A model that carries a correction (``bayesfm.model.emulator_correction``) has its MLP's
shift added to the transformer's mean. Its sigma is the transformer's, times the per-token
factors the model records in ``model.info["emulator_sigma_factors"]``
(``bayesfm.model.emulator_sigma``) when it has them.
A model that records an ``extinction_law`` (``bayesfm.model.extinction_law``) is queried
at the law's a_k context and reddened by the law; its A_K input is on ak_targ's scale. So is
that of a model that records an ``a_k_scale`` (``bayesfm.model.a_k_scale``).
"""

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bayesfm.common.errors import DataError
from bayesfm.model.a_k_scale import AKScale
from bayesfm.model.emulator_correction import correction_of
from bayesfm.model.extinction_law import ExtinctionLaw, redden
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.vocabulary import Scaling

__all__ = [
    "Emulator",
    "make_emulator",
    "emulator_fingerprint",
    "context_errors",
    "extinction_law_of",
    "a_k_scale_of",
]


@dataclass(frozen=True)
class Emulator:
    """A frozen emulator.

    Attributes:
        inputs: Names of the input tokens [n_in], in the order ``emulate`` takes them.
        outputs: Names of the predicted tokens [K].
        emulate: ``x [n_in] (physical units) -> (mean [K], sigma [K])`` (physical units).
        fingerprint: SHA-256 of what ``emulate`` computes (weights and settings), where
            known; programs built on an emulator without one are traced afresh in every
            process (``bayesfm.common.stored_programs``).
    """

    inputs: tuple
    outputs: tuple
    emulate: Callable
    fingerprint: str | None = None

    def __call__(self, x):
        return self.emulate(x)

    def jacobian(self, x):
        """d mean / d inputs [K, n_in] at physical inputs ``x`` [n_in]."""
        return jax.jacfwd(lambda v: self.emulate(v)[0])(jnp.asarray(x, jnp.float32))

    @functools.cached_property
    def _vmapped(self):
        return jax.jit(jax.vmap(self.emulate))

    def batch(self, x, size: int = 1024):
        """(mean, sigma) [N, K] as numpy arrays for many stars' inputs ``x`` [N, n_in]."""
        x = np.asarray(x, np.float32)
        parts = [self._vmapped(x[i : i + size]) for i in range(0, len(x), size)]
        return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in (0, 1))


def make_emulator(
    model: FoundationModel,
    inputs: Sequence[str] = LABEL_INPUTS,
    outputs: Sequence[str] | None = None,
    jit: bool = True,
    extinction_law: bool = True,
) -> Emulator:
    """Build the frozen emulator ``inputs -> outputs`` (default outputs: XP flux and colours);
    with ``extinction_law=False`` the transformer's own a_k response and scale even where the
    model records a law or an a_k scale."""
    vocabulary = model.vocabulary
    if outputs is None:
        outputs = vocabulary.names_in_group("xp_bp", "xp_rp", "colour")
    in_index = vocabulary.index(inputs)
    correction = correction_of(model, inputs, outputs)
    requested = tuple(outputs) if correction is None else correction.outputs
    columns = jnp.asarray([requested.index(name) for name in outputs])
    in_scaling = Scaling(*(jnp.asarray(a) for a in vocabulary.scaling(inputs)))
    out_scaling = Scaling(*(jnp.asarray(a) for a in vocabulary.scaling(outputs)))
    graphdef, params = model.graphdef, model.params
    context_index = jnp.asarray(in_index)[None]
    context_error = jnp.asarray(context_errors(model, inputs), jnp.float32)[None]
    context_mask = jnp.ones((1, len(in_index)), bool)
    request_index = jnp.asarray(vocabulary.index(requested))[None]
    factors = model.info.get("emulator_sigma_factors", {})
    sigma_unit = out_scaling.scale * jnp.asarray([factors.get(n, 1.0) for n in outputs])

    def emulate(x):
        z = in_scaling.normalise(jnp.asarray(x)).astype(jnp.float32)[None]
        transformer = nnx.merge(graphdef, params)
        mean, log_var = transformer(context_index, z, context_error, context_mask, request_index)
        mean, log_var = mean[0], log_var[0]
        if correction is not None:
            mean = mean + correction.shift(z[0], mean)
        return out_scaling.physical(mean[columns]), jnp.exp(0.5 * log_var[columns]) * sigma_unit

    if extinction_law:
        emulate = _on_ak_targ_scale(emulate, model, inputs, outputs)
    fingerprint = None
    if model.weights_sha256 is not None:
        settings = [emulator_fingerprint(model), list(inputs), list(outputs), extinction_law]
        fingerprint = hashlib.sha256(json.dumps(settings).encode()).hexdigest()
    emulate = jax.jit(emulate) if jit else emulate
    return Emulator(tuple(inputs), tuple(outputs), emulate, fingerprint)


def emulator_fingerprint(model: FoundationModel) -> str:
    """SHA-256 of what ``make_emulator(model)`` computes: the weights file's hash and the
    model's emulator settings (sigma factors, context errors, correction record, A_K scale,
    extinction law)."""
    settings = {
        key: value
        for key, value in model.info.items()
        if key.startswith("emulator_") or key in ("a_k_scale", "extinction_law")
    }
    text = json.dumps([model.weights_sha256, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _on_ak_targ_scale(emulate_at, model: FoundationModel, inputs, outputs):
    """``emulate`` whose A_K input is on ak_targ's scale: reddened by the model's extinction
    law, or mapped by its a_k scale (unchanged if it records neither)."""
    law = extinction_law_of(model)
    if "a_k" not in inputs:
        if law is not None:
            raise DataError("a model with an extinction law emulates from inputs that include a_k")
        return emulate_at
    a_k_index = list(inputs).index("a_k")
    if law is not None:
        flux = set(model.vocabulary.names_in_group("xp_bp", "xp_rp"))
        return redden(emulate_at, law, outputs, [name in flux for name in outputs], a_k_index)
    scale = a_k_scale_of(model)
    if scale is None:
        return emulate_at

    def emulate(x):
        x = jnp.asarray(x)
        return emulate_at(x.at[a_k_index].set(scale.transformer_a_k(x[a_k_index])))

    return emulate


def extinction_law_of(model: FoundationModel) -> ExtinctionLaw | None:
    """The extinction law ``model`` records, if any."""
    record = model.info.get("extinction_law")
    return None if record is None else ExtinctionLaw.from_info(record)


def a_k_scale_of(model: FoundationModel) -> AKScale | None:
    """The map of ``model``'s a_k token onto the A_K scale its emulator takes (its
    extinction law's, or the ``a_k_scale`` it records), if any."""
    law = extinction_law_of(model)
    if law is not None:
        return law.scale()
    record = model.info.get("a_k_scale")
    return None if record is None else AKScale.from_info(record)


def context_errors(model: FoundationModel, inputs: Sequence[str]):
    """Normalised errors [n_in] the context embedding gets for latent (exact) inputs: the
    ones training gave the emulator task (``model.info["emulator_context_errors"]``), so
    that the emulator is queried only with contexts its training produced."""
    known = model.info.get("emulator_context_errors")
    if known is None:
        raise DataError(
            "this model records no emulator_context_errors (the context errors its training "
            "gave latent label inputs); retrain it with this bayesfm"
        )
    missing = [name for name in inputs if name not in known]
    if missing:
        raise DataError(
            f"the model was not trained to emulate from {missing}; it knows {list(known)}"
        )
    return [known[name] for name in inputs]
