"""The fixed train/validation/test split: the only place that decides it.

Each star's split follows from its Gaia source id alone, so every result in the
project is comparable: ``u = int(sha256(str(source_id))[:8], 16) / 2**32``;
test if ``u < 0.1``, validation if ``0.1 <= u < 0.2``, train otherwise.
"""

import hashlib

import numpy as np

__all__ = ["SPLITS", "split_fraction", "split_of", "split_mask"]

SPLITS = ("train", "validation", "test")


def split_fraction(source_id: int) -> float:
    """The hash fraction u in [0, 1) of one Gaia source id."""
    digest = hashlib.sha256(str(int(source_id)).encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def split_of(source_id: int) -> str:
    """Which split ("train", "validation" or "test") a star belongs to."""
    u = split_fraction(source_id)
    if u < 0.1:
        return "test"
    if u < 0.2:
        return "validation"
    return "train"


def split_mask(source_ids, split: str) -> np.ndarray:
    """Boolean mask [N] of the stars in ``split`` among ``source_ids`` [N]."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return np.array([split_of(s) == split for s in np.asarray(source_ids)], dtype=bool)
