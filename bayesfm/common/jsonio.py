"""JSON for frozen dataclasses: the one way bayesfm saves and loads its settings and small
fitted objects (noise model, prior, sigma factors, run configurations).

``to_json`` turns dataclasses, NamedTuples and arrays into plain JSON values;
``from_json`` builds a dataclass back from them by its field types, starting from the
field defaults (a file says only what differs), and names any unknown key.
"""

import dataclasses
import json
import types
import typing
from pathlib import Path

import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_write_text

__all__ = ["to_json", "from_json", "save_json", "load_json"]


def to_json(value):
    """Plain JSON values (dicts, lists, numbers, strings, None) from ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: to_json(item) for key, item in value._asdict().items()}
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def from_json(cls, data: dict, what: str):
    """A ``cls`` (a dataclass or NamedTuple) from ``data``; fields absent keep their defaults.

    Raises:
        DataError: ``data`` is not an object, has unknown keys, or a value of the wrong kind.
    """
    if not isinstance(data, dict):
        raise DataError(f"{what} must be a JSON object, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise DataError(f"unknown {what} setting(s) {unknown}; known: {sorted(hints)}")
    defaults = _defaults(cls)
    values = {}
    for name, value in data.items():
        values[name] = _field_value(hints[name], value, defaults.get(name), f"{what}.{name}")
    try:
        return cls(**values)
    except TypeError as err:
        raise DataError(f"bad {what}: {err}") from err


def save_json(path, value) -> None:
    atomic_write_text(path, json.dumps(to_json(value)))


def load_json(path, what: str) -> dict:
    """The JSON object in ``path``; DataError naming ``what`` if it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {what} from {path}: {err}") from err


def _defaults(cls) -> dict:
    if dataclasses.is_dataclass(cls):
        return {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
    return dict(getattr(cls, "_field_defaults", {}))


def _field_value(kind, value, default, what: str):
    """``value`` converted to the field type ``kind`` (None stays None for optional fields)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        kind = next((k for k in options if isinstance(value, list) == _is_sequence(k)), options[0])
    if kind is np.ndarray:
        return np.asarray(value, float)
    if dataclasses.is_dataclass(kind) or hasattr(kind, "_fields"):
        merged = (
            {**to_json(default), **value}
            if default is not None and isinstance(value, dict)
            else value
        )
        return from_json(kind, merged, what)
    if typing.get_origin(kind) is tuple or kind is tuple:
        return tuple(value)
    if kind is float and isinstance(value, int | float):
        return float(value)
    return value


def _is_sequence(kind) -> bool:
    """Whether a field of type ``kind`` is stored as a JSON list."""
    return kind in (np.ndarray, tuple, list) or typing.get_origin(kind) in (tuple, list)
