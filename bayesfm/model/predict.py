"""Amortized any-to-any predictions of the foundation model, in physical units."""

from collections.abc import Sequence
from functools import partial

import jax
import numpy as np
from flax import nnx

from bayesfm.common.devices import pad_leading
from bayesfm.common.errors import DataError
from bayesfm.model.batching import pack
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.sigma_scale import SigmaScale
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["predict", "TASKS"]

# The paper's four tasks: (context token groups, requested token groups)
TASKS = {
    "spectra_to_labels": (("xp_bp", "xp_rp", "colour"), ("label",)),
    "labels_to_spectra": (("label", "extinction"), ("xp_bp", "xp_rp", "colour")),
    "rp_to_bp": (("xp_rp",), ("xp_bp",)),
    "labels_to_labels": (("label",), ("label",)),
}


def predict(
    model: FoundationModel,
    stars: StarTokens,
    request: Sequence[str],
    context: Sequence[str] | None = None,
    batch_size: int = 512,
    sigma_scale: SigmaScale | None = None,
):
    """Predict the ``request`` tokens of every star from its ``context`` tokens.

    Args:
        model: A trained foundation model.
        stars: N stars; each uses those of its ``context`` tokens that it has.
        request: Names of the K tokens to predict.
        context: Names of the tokens to condition on (default: every token of ``stars``
            not requested). A token both requested and in the context is an error.
        batch_size: Stars per forward pass.
        sigma_scale: Factors on the predicted sigma fitted on validation stars (e.g.
            ``SigmaScale.load()``, the shipped ones for spectra -> labels); use them with
            the task they were fitted for.

    Returns:
        (mean, sigma), each [N, K] in the tokens' physical units; sigma is the model's
        predicted 1-sigma uncertainty of the true (noise-free) value.
    """
    vocabulary = model.vocabulary
    request = list(request)
    context = [n for n in stars.names if n not in request] if context is None else list(context)
    overlap = sorted(set(request) & set(context))
    if overlap:
        raise DataError(f"tokens {overlap} are both requested and given as context")
    request_index = vocabulary.index(request)
    full_values, full_errors, full_present = _vocabulary_arrays(vocabulary, stars, context)
    target = np.zeros_like(full_present)
    target[:, request_index] = True

    means, log_vars = [], []
    for start in range(0, len(stars), batch_size):
        rows = slice(start, start + batch_size)
        batch = pack(full_values[rows], full_errors[rows], full_present[rows], target[rows])
        n = len(batch.context_index)
        padded = pad_leading(tuple(batch[:5]), batch_size)
        mean, log_var = _forward(model.graphdef, model.params, *padded)
        means.append(np.asarray(mean)[:n])
        log_vars.append(np.asarray(log_var)[:n])
    # pack() orders targets by vocabulary index; restore the requested order
    order = np.argsort(np.argsort(request_index))
    mean = np.concatenate(means)[:, order]
    sigma = np.sqrt(np.exp(np.concatenate(log_vars)))[:, order]
    mean, sigma = vocabulary.denormalise(mean, sigma, request_index)
    if sigma_scale is not None:
        sigma = sigma_scale.apply(request, sigma)
    return mean, sigma


@partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, ci, cv, ce, cm, ri):
    return nnx.merge(graphdef, params)(ci, cv, ce, cm, ri)


def _vocabulary_arrays(vocabulary, stars: StarTokens, context):
    """Normalised (values, errors, present) [N, T] over the whole vocabulary, holding the
    stars' ``context`` tokens only."""
    star_columns = stars.index(context)
    vocab_columns = vocabulary.index(context)
    values, errors = vocabulary.normalise(
        stars.values[:, star_columns], stars.errors[:, star_columns], vocab_columns
    )
    present = np.isfinite(values)
    if not present.any(axis=1).all():
        empty = stars.source_id[~present.any(axis=1)][:5].tolist()
        raise DataError(f"stars {empty} have none of the context tokens; nothing to predict from")
    full_values = np.zeros((len(stars), len(vocabulary)), np.float32)
    full_errors = np.ones_like(full_values)
    full_present = np.zeros(full_values.shape, bool)
    full_values[:, vocab_columns] = np.where(present, values, 0.0)
    full_errors[:, vocab_columns] = np.where(present, errors, 1.0)
    full_present[:, vocab_columns] = present
    return full_values, full_errors, full_present
