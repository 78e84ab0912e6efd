"""Saving pytrees (weights, optimiser state) without pickle: safetensors and npz.

Writes are atomic (a temporary file renamed into place), so an interrupted save never
leaves a corrupt checkpoint behind.
"""

import os
from pathlib import Path

import jax
import numpy as np
from safetensors.numpy import load_file, save_file

from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_path

__all__ = ["flatten_named", "save_named_arrays", "load_named_arrays", "save_leaves", "load_leaves"]


def flatten_named(tree) -> dict:
    """{"a/b/0/kernel": array} from a nested dict/list pytree."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): np.asarray(leaf) for path, leaf in flat}


def _key_name(key):
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def save_named_arrays(path, arrays: dict, metadata: dict | None = None) -> None:
    """Atomically write named arrays to a safetensors file (string metadata allowed)."""
    with atomic_path(path) as tmp:
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(arrays, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)


def load_named_arrays(path) -> dict:
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise DataError(f"{path} is not a readable safetensors file ({err}); re-create it") from err


def save_leaves(path, tree, **extra) -> None:
    """Atomically write a pytree's leaves (in flatten order) and extra arrays to .npz."""
    path = Path(path)
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {f"leaf_{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    arrays.update({f"extra_{k}": np.asarray(v) for k, v in extra.items()})
    with atomic_path(path, keep_suffix=True) as tmp:  # path ends in .npz
        np.savez(tmp, **arrays)


def load_leaves(path, like):
    """(tree shaped like ``like``, extras dict) from ``save_leaves``'s file."""
    with np.load(path, allow_pickle=False) as data:
        leaves, treedef = jax.tree_util.tree_flatten(like)
        stored = sorted(k for k in data.files if k.startswith("leaf_"))
        if len(stored) != len(leaves):
            raise DataError(f"{path} holds {len(stored)} arrays; this model needs {len(leaves)}")
        loaded = []
        for key, leaf in zip(stored, leaves, strict=True):
            array = data[key]
            if array.shape != np.shape(leaf):
                raise DataError(f"{path}: {key} has shape {array.shape}, expected {np.shape(leaf)}")
            loaded.append(array)
        extras = {k[len("extra_") :]: data[k] for k in data.files if k.startswith("extra_")}
    return jax.tree_util.tree_unflatten(treedef, loaded), extras
