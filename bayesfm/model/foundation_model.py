"""A trained foundation model: transformer weights + config + vocabulary, saved without pickle.

On disk a model is two files side by side: ``<name>.safetensors`` (the weights, and those of
its emulator correction if it has one: ``bayesfm.model.emulator_correction``) and
``<name>.json`` (format version, the weights file's SHA-256, transformer config, vocabulary
with its normalisation, the training data's hash and the training summary). Loading checks
the SHA-256, so a damaged weights file is refused rather than giving shifted predictions.
"""

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.pytree_io import flatten_named, load_named_arrays, save_named_arrays
from bayesfm.model.mlp import mlp_arrays, mlp_from_arrays
from bayesfm.model.transformer import StarTransformer, TransformerConfig
from bayesfm.tokens.vocabulary import Vocabulary

__all__ = [
    "MODEL_FORMAT_VERSION",
    "FoundationModel",
    "build_model",
    "default_model_path",
    "file_sha256",
]

MODEL_FORMAT_VERSION = 1
CORRECTION_PREFIX = "emulator_correction"  # of the correction's weights in the safetensors file


def build_model(config: TransformerConfig, seed: int = 0):
    """(graphdef, params) of a freshly initialised transformer."""
    return nnx.split(StarTransformer(config, nnx.Rngs(seed)))


def _zero_model(config: TransformerConfig):
    """(graphdef, params) of a transformer with zero weights, to load weights into: shaped
    without initialising them at random, which compiled some 20 programs and took seconds."""
    graphdef, shapes = nnx.split(nnx.eval_shape(lambda: StarTransformer(config, nnx.Rngs(0))))
    zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), nnx.to_pure_dict(shapes))
    nnx.replace_by_pure_dict(shapes, zeros)
    return graphdef, shapes


@dataclass(frozen=True)
class FoundationModel:
    """Everything needed to query the transformer in physical units.

    Attributes:
        config: Transformer sizes.
        vocabulary: Tokens and their normalisation.
        graphdef: The NNX graph definition (structure, no weights).
        params: The NNX state (weights).
        info: Provenance: data hash, training summary, versions.
        weights_sha256: SHA-256 of the weights file it was loaded from (None if unsaved).
        emulator_correction: The MLP layers [(w, b)] that shift the emulator's mean
            (``bayesfm.model.emulator_correction``; empty: none).
    """

    config: TransformerConfig
    vocabulary: Vocabulary
    graphdef: object
    params: object
    info: dict = field(default_factory=dict)
    weights_sha256: str | None = None
    emulator_correction: tuple = ()

    def module(self) -> StarTransformer:
        return nnx.merge(self.graphdef, self.params)

    def without_request_head(self) -> "FoundationModel":
        """This model with its request head removed (``head_width`` 0), every other weight kept;
        exact only where the head's gate is zero (``validation/ship_model.py`` measures it)."""
        config = replace(self.config, head_width=0)
        graphdef, params = _zero_model(config)
        kept = {k: v for k, v in nnx.to_pure_dict(self.params).items() if not k.startswith("head_")}
        nnx.replace_by_pure_dict(params, kept)
        return replace(self, config=config, graphdef=graphdef, params=params, weights_sha256=None)

    @property
    def n_parameters(self) -> int:
        """Weights of the transformer and of the emulator correction."""
        leaves = jax.tree_util.tree_leaves((self.params, self.emulator_correction))
        return int(sum(np.size(x) for x in leaves))

    def save(self, path) -> None:
        """Write ``path`` (.safetensors) and its .json sidecar."""
        path = Path(path).with_suffix(".safetensors")
        arrays = flatten_named(nnx.to_pure_dict(self.params))
        arrays |= mlp_arrays(self.emulator_correction, CORRECTION_PREFIX)
        save_named_arrays(path, arrays)
        meta = {
            "format_version": MODEL_FORMAT_VERSION,
            "weights_sha256": file_sha256(path),
            "config": self.config.to_dict(),
            "vocabulary": self.vocabulary.to_dict(),
            "info": self.info,
        }
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, path=None) -> "FoundationModel":
        """Load a saved model; default: the pretrained model shipped with bayesfm."""
        path = Path(path) if path is not None else default_model_path()
        path = path.with_suffix(".safetensors")
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            raise DataError(
                f"model files {path} and {meta_path.name} are both needed; one is missing"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{meta_path} is not valid JSON: {err}") from err
        if meta.get("format_version") != MODEL_FORMAT_VERSION:
            raise DataError(
                f"{meta_path}: model format {meta.get('format_version')!r} is not supported "
                f"(this bayesfm reads version {MODEL_FORMAT_VERSION})"
            )
        if meta.get("weights_sha256") != file_sha256(path):
            raise DataError(
                f"{path} does not match the SHA-256 recorded in {meta_path.name}: the weights "
                "file is damaged or was replaced; reinstall bayesfm or re-save the model"
            )
        config = TransformerConfig(**meta["config"])
        vocabulary = Vocabulary.from_dict(meta["vocabulary"])
        if len(vocabulary) != config.n_tokens:
            raise DataError(
                f"{meta_path}: vocabulary has {len(vocabulary)} tokens, model {config.n_tokens}"
            )
        graphdef, params = _zero_model(config)
        expected = flatten_named(nnx.to_pure_dict(params))
        stored = load_named_arrays(path)
        try:
            correction = mlp_from_arrays(stored, CORRECTION_PREFIX)
        except ValueError as err:
            raise DataError(f"{path}: {err}; re-save the model") from err
        stored = {k: v for k, v in stored.items() if not k.startswith(f"{CORRECTION_PREFIX}/")}
        if set(stored) != set(expected):
            raise DataError(
                f"{path} does not match its config: weights {sorted(set(stored) ^ set(expected))[:4]} "
                "are missing or unexpected"
            )
        for name, array in expected.items():
            if stored[name].shape != array.shape:
                raise DataError(
                    f"{path}: weight {name} has shape {stored[name].shape}, config needs {array.shape}"
                )
        pure = nnx.to_pure_dict(params)
        treedef = jax.tree_util.tree_structure(pure)
        pure = jax.tree_util.tree_unflatten(treedef, [stored[name] for name in expected])
        nnx.replace_by_pure_dict(params, pure)
        info = meta.get("info", {})
        return cls(config, vocabulary, graphdef, params, info, meta["weights_sha256"], correction)


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_path() -> Path:
    return shipped_data_path("foundation_model.safetensors")
