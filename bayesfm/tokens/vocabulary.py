"""The vocabulary: named tokens with units and a normalisation fitted on the train split.

The vocabulary is data. It is saved as JSON with a format version and a content
hash next to the weights, and a model only ever sees token *indices* into it, so
new tokens (a new survey, another XP basis) can be added without code changes.
"""

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import TokenSpec
from bayesfm.tokens.star_tokens import StarTokens, name_index

__all__ = ["FORMAT_VERSION", "Scaling", "Vocabulary", "fit_vocabulary"]

FORMAT_VERSION = 1


class Scaling(NamedTuple):
    """The one map between physical values x and normalised ones z = (x - loc) / scale.

    Its fields are arrays of NumPy or JAX (a NamedTuple is a pytree, so it passes through
    ``jit``); the emulator, the star model and the samplers all convert with it.
    """

    loc: Any
    scale: Any

    def normalise(self, x):
        return (x - self.loc) / self.scale

    def physical(self, z):
        return self.loc + self.scale * z


@dataclass(frozen=True)
class Vocabulary:
    """Tokens and their normalisation ``z = (x - loc) / scale``.

    Attributes:
        specs: One TokenSpec per token [T].
        loc: Normalisation offsets [T], in each token's unit.
        scale: Normalisation scales [T], in each token's unit.
        binning: The XP binning that made the flux tokens.
    """

    specs: tuple
    loc: np.ndarray
    scale: np.ndarray
    binning: XPBinning

    def __post_init__(self):
        t = len(self.specs)
        if self.loc.shape != (t,) or self.scale.shape != (t,):
            raise DataError(f"loc and scale must have shape ({t},), one value per token")
        if not np.all(self.scale > 0):
            raise DataError("every normalisation scale must be positive")

    @property
    def names(self) -> tuple:
        return tuple(s.name for s in self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def index(self, names) -> np.ndarray:
        """Token indices [K] of ``names``; DataError naming any unknown token."""
        return name_index(self.names, names)

    def names_in_group(self, *groups) -> tuple:
        return tuple(s.name for s in self.specs if s.group in groups)

    def scaling(self, names) -> Scaling:
        """The normalisation of tokens ``names`` [K] as one ``Scaling``."""
        index = self.index(names)
        return Scaling(self.loc[index], self.scale[index])

    def normalise(self, values, errors, index=None):
        """Physical (values, errors) [..., K] -> normalised, for tokens ``index`` (default all)."""
        loc, scale = self._loc_scale(index)
        return (np.asarray(values) - loc) / scale, np.asarray(errors) / scale

    def denormalise(self, values, errors, index=None):
        """Normalised (values, errors) [..., K] -> physical units."""
        loc, scale = self._loc_scale(index)
        return np.asarray(values) * scale + loc, np.asarray(errors) * scale

    def _loc_scale(self, index):
        if index is None:
            return self.loc, self.scale
        return self.loc[index], self.scale[index]

    def to_dict(self) -> dict:
        body = {
            "format_version": FORMAT_VERSION,
            "binning": asdict(self.binning),
            "tokens": [
                {**asdict(spec), "loc": float(loc), "scale": float(scale)}
                for spec, loc, scale in zip(self.specs, self.loc, self.scale, strict=True)
            ],
        }
        return {**body, "content_hash": _content_hash(body)}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"vocabulary format version {version!r} is not supported (this bayesfm reads "
                f"version {FORMAT_VERSION}); upgrade bayesfm or re-export the vocabulary"
            )
        body = {k: v for k, v in data.items() if k != "content_hash"}
        if data.get("content_hash") != _content_hash(body):
            raise DataError(
                "vocabulary content hash does not match its content: file corrupt or edited"
            )
        tokens = data["tokens"]
        specs = tuple(TokenSpec(t["name"], t["unit"], t["description"], t["group"]) for t in tokens)
        return cls(
            specs=specs,
            loc=np.array([t["loc"] for t in tokens], dtype=np.float64),
            scale=np.array([t["scale"] for t in tokens], dtype=np.float64),
            binning=XPBinning(**data["binning"]),
        )

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "Vocabulary":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{path} is not a valid vocabulary JSON file: {err}") from err
        return cls.from_dict(data)


def fit_vocabulary(train: StarTokens, specs, binning: XPBinning) -> Vocabulary:
    """Fit loc (median) and scale (1.4826 x MAD) per token on train-split stars only."""
    if tuple(s.name for s in specs) != train.names:
        raise DataError("token specs and star tokens list different names")
    with np.errstate(all="ignore"):
        loc = np.nanmedian(train.values, axis=0)
        scale = 1.4826 * np.nanmedian(np.abs(train.values - loc), axis=0)
    empty = ~np.isfinite(loc)
    if empty.any():
        raise DataError(f"no train-split values for tokens {np.array(train.names)[empty].tolist()}")
    scale = np.where(scale > 0, scale, 1.0)
    return Vocabulary(tuple(specs), loc, scale, binning)


def _content_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
