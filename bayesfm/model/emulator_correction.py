"""The emulator's correction: an MLP fitted to the frozen transformer's residuals.

The transformer's labels -> spectrum direction stopped gaining from more training steps of
the same recipe (docs/model_card.md, stages 11-14), yet an MLP on its residuals still finds
structure in them: per output token, a smooth function of the five labels that the
transformer's decoder misses. The correction is that MLP (fitted by
``bayesfm.model.emulator_correction_fit``). On the train split, at each star's
labels with the cleaned A_K its training fitted (the transformer's own a_k scale), it maps the
five normalised inputs and the transformer's normalised means of every emulated token (a
decoder on top of the transformer's) to a shift of each mean and a log-variance, trained
on the Gaussian NLL of the residual (variance exp(log-variance) + obs error^2, normalised
units). Only the shift is kept: the emulator's sigma stays the transformer's, times the sigma
factors fitted afterwards (``bayesfm.model.emulator_sigma``) on the corrected means.

``make_emulator`` adds the shift where the model carries a correction
(``FoundationModel.emulator_correction``, ``correction_of``); the transformer is queried
exactly as before, for every token the correction reads.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from bayesfm.common.errors import DataError
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.mlp import mlp_outputs
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["Correction", "correction_of"]


class Correction(NamedTuple):
    """A model's correction, ready to apply.

    Attributes:
        outputs: The tokens it shifts [K] (the default emulator's), all of which the
            transformer is asked for.
        shift: ``(z [5], mean [K]) -> shift [K]``: from the normalised inputs and the
            transformer's normalised means, the shift of those means (normalised units).
    """

    outputs: tuple
    shift: Callable


def correction_of(model: FoundationModel, inputs, outputs) -> Correction | None:
    """``model``'s correction for an emulator ``inputs -> outputs`` (None if it has none).

    Raises:
        DataError: the emulator's inputs are not the five labels, it asks for tokens the
            correction does not shift, or the layers do not fit the model's tokens.
    """
    layers = model.emulator_correction
    if not layers:
        return None
    if tuple(inputs) != LABEL_INPUTS:
        raise DataError(
            f"the model's emulator correction takes {LABEL_INPUTS}, not {tuple(inputs)}"
        )
    shifted = tuple(model.vocabulary.names_in_group("xp_bp", "xp_rp", "colour"))
    n_in, n_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    if n_in not in (len(inputs), len(inputs) + len(shifted)) or n_out != len(shifted):
        raise DataError(
            f"the model's emulator correction maps {n_in} inputs to {n_out} tokens, which "
            f"does not fit its {len(inputs)} labels and {len(shifted)} emulated tokens: re-fit "
            "it (validation/fit_emulator_correction.py)"
        )
    unknown = sorted(set(outputs) - set(shifted))
    if unknown:
        raise DataError(f"the model's emulator correction does not emulate {unknown}")
    layers = jax.tree_util.tree_map(jnp.asarray, layers)
    reads_means = n_in > len(inputs)

    def shift(z, mean):
        return mlp_outputs(layers, jnp.concatenate([z, mean]) if reads_means else z)

    return Correction(shifted, shift)
