import hashlib

import numpy as np
import pytest

from bayesfm.tokens.split import split_fraction, split_mask, split_of


def test_split_follows_the_published_rule():
    for source_id in [1, 42, 5853498713190525696, 4050000000000000000]:
        u = int(hashlib.sha256(str(source_id).encode()).hexdigest()[:8], 16) / 2**32
        assert split_fraction(source_id) == u
        expected = "test" if u < 0.1 else "validation" if u < 0.2 else "train"
        assert split_of(source_id) == expected


def test_split_is_deterministic_and_partitions():
    ids = np.arange(10_000, 30_000, dtype=np.int64)
    masks = [split_mask(ids, s) for s in ("train", "validation", "test")]
    assert np.array_equal(masks[2], split_mask(ids, "test"))
    assert (sum(m.astype(int) for m in masks) == 1).all()
    fractions = [m.mean() for m in masks]
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.01)


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="unknown split"):
        split_mask([1, 2], "holdout")
