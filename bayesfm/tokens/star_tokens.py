"""A set of stars as token values and errors, NaN where a token is absent."""

import hashlib
from dataclasses import dataclass

import numpy as np

from bayesfm.common.errors import DataError

__all__ = ["StarTokens", "merge_duplicates", "name_index"]


@dataclass(frozen=True)
class StarTokens:
    """Token values of N stars over T named tokens.

    Attributes:
        source_id: Gaia DR3 source ids [N] (int64).
        names: Token names [T].
        values: Token values [N, T] in physical units (see the vocabulary); NaN if absent.
        errors: 1-sigma measurement errors [N, T], same units; NaN where the value is absent.
    """

    source_id: np.ndarray
    names: tuple
    values: np.ndarray
    errors: np.ndarray

    def __post_init__(self):
        n, t = len(self.source_id), len(self.names)
        for field in ("values", "errors"):
            shape = getattr(self, field).shape
            if shape != (n, t):
                raise DataError(f"{field} has shape {shape}; expected ({n}, {t}) stars x tokens")
        if len(set(self.names)) != t:
            raise DataError("token names must be unique")

    def __len__(self) -> int:
        return len(self.source_id)

    @property
    def present(self) -> np.ndarray:
        """Boolean mask [N, T] of the tokens each star has."""
        return np.isfinite(self.values)

    def index(self, names) -> np.ndarray:
        """Column indices of ``names``; DataError naming any unknown one."""
        return name_index(self.names, names)

    def column(self, name: str):
        """(values [N], errors [N]) of one token."""
        i = self.index([name])[0]
        return self.values[:, i], self.errors[:, i]

    def with_column(self, name: str, values, errors) -> "StarTokens":
        """A copy with one token's values and errors [N] replaced."""
        i = self.index([name])[0]
        new_values, new_errors = self.values.copy(), self.errors.copy()
        new_values[:, i], new_errors[:, i] = values, errors
        return StarTokens(self.source_id, self.names, new_values, new_errors)

    def take(self, rows) -> "StarTokens":
        """The stars at ``rows`` (indices or a boolean mask)."""
        return StarTokens(self.source_id[rows], self.names, self.values[rows], self.errors[rows])

    def content_hash(self) -> str:
        """SHA-256 of the source ids, values and errors (the training data's identity)."""
        digest = hashlib.sha256()
        for array in (self.source_id, self.values, self.errors):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def missing_fraction(self) -> dict:
        """Fraction of stars lacking each token, by name."""
        return dict(zip(self.names, 1.0 - self.present.mean(axis=0), strict=True))


def name_index(known, names) -> np.ndarray:
    """Positions [K] of ``names`` in ``known``; DataError naming any unknown name."""
    lookup = {name: i for i, name in enumerate(known)}
    unknown = [name for name in names if name not in lookup]
    if unknown:
        raise DataError(f"unknown token name(s) {unknown}; known tokens: {list(known)}")
    return np.array([lookup[name] for name in names], dtype=np.int32)


def merge_duplicates(tokens: StarTokens) -> StarTokens:
    """Keep one row per source id; identical repeats merge, conflicting ones raise."""
    _, first, inverse = np.unique(tokens.source_id, return_index=True, return_inverse=True)
    if len(first) == len(tokens):
        return tokens
    reference = first[inverse]
    same = np.all(
        _equal_or_both_nan(tokens.values, tokens.values[reference])
        & _equal_or_both_nan(tokens.errors, tokens.errors[reference]),
        axis=1,
    )
    if not same.all():
        conflicting = np.unique(tokens.source_id[~same])
        raise DataError(
            f"{len(conflicting)} source id(s) appear more than once with different values, "
            f"e.g. {conflicting[:5].tolist()}; keep one row per star before loading"
        )
    return tokens.take(np.sort(first))


def _equal_or_both_nan(a, b):
    return (a == b) | (np.isnan(a) & np.isnan(b))
