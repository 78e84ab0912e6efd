"""Warm starts: a new run's parameters taken from a saved model, checked against the run."""

from dataclasses import replace

from flax import nnx

from bayesfm.common.errors import DataError
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.transformer import TransformerConfig

__all__ = ["warm_start_params"]


def warm_start_params(init_from: str, model_config: TransformerConfig, vocabulary, params):
    """``params`` with the weights of the model named by ``init_from`` (a path, or "default"
    for the shipped one), checked against this run. A start without the pooled summary or the
    request head may grow them: the new parts begin from ``params``."""
    start = FoundationModel.load(None if init_from == "default" else init_from)
    grown = start.config
    if grown.summary_width == 0:
        grown = replace(grown, summary_width=model_config.summary_width)
    if grown.head_width == 0:
        grown = replace(grown, head_width=model_config.head_width)
    if grown != model_config:
        raise DataError(
            f"init_from model {init_from!r} has config {start.config}, the run needs "
            f"{model_config}; make the config's 'model' section match it"
        )
    if start.vocabulary.to_dict() != vocabulary.to_dict():
        raise DataError(
            f"init_from model {init_from!r} was trained with another vocabulary or "
            "normalisation (different data or binning); warm starts need the same"
        )
    merged = _merged(nnx.to_pure_dict(params), nnx.to_pure_dict(start.params))
    nnx.replace_by_pure_dict(params, merged)
    return params


def _merged(base: dict, update: dict) -> dict:
    """Nested dict ``base`` with every leaf that ``update`` has replaced by update's."""
    return {
        key: _merged(value, update[key])
        if isinstance(value, dict) and key in update
        else update.get(key, value)
        for key, value in base.items()
    }
