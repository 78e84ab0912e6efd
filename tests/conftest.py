"""Test set-up: CPU only, fixed seeds, shared fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bayesfm.sources.examples import load_example_stars  # noqa: E402

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def example_stars():
    return load_example_stars()


@pytest.fixture(scope="session")
def archive_dir():
    """Real Gaia archive XP_CONTINUOUS files, copied into tests/data."""
    if not os.path.exists(os.path.join(DATA_DIR, "XP_CONTINUOUS_RAW.csv")):
        pytest.fail(f"Gaia XP_CONTINUOUS test files not found in {DATA_DIR}")
    return DATA_DIR
