"""Test set-up: CPU only, fixed seeds, shared fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesfm.sources.examples import load_example_stars  # noqa: E402

XP_ARCHIVE_DIR = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "gaia_xp_continuous"
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def example_stars():
    return load_example_stars()


@pytest.fixture(scope="session")
def archive_dir():
    """The real Gaia archive XP_CONTINUOUS files (shared/data), or the copies in tests/data."""
    for path in (XP_ARCHIVE_DIR, os.path.join(os.path.dirname(__file__), "data")):
        if os.path.exists(os.path.join(path, "XP_CONTINUOUS_RAW.csv")):
            return path
    pytest.fail("Gaia XP_CONTINUOUS test files not found in ../shared/data or tests/data")
