"""Test set-up: CPU only, fixed seeds, shared fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the command line's compilation cache stays out of the user's folder (tests/test_cli.py checks it)
os.environ.setdefault("BAYESFM_COMPILATION_CACHE", "off")

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
def tiny_model_path(tmp_path_factory):
    """A small untrained model with the shipped vocabulary (so the shipped prior fits)."""
    from bayesfm.model.foundation_model import FoundationModel, build_model
    from bayesfm.model.transformer import TransformerConfig

    shipped = FoundationModel.load()
    tiny = dict(width=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, mlp_width=32)
    config = TransformerConfig(n_tokens=len(shipped.vocabulary), **tiny)
    graphdef, params = build_model(config, seed=5)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    FoundationModel(config, shipped.vocabulary, graphdef, params, shipped.info).save(path)
    return path


@pytest.fixture(scope="session")
def archive_dir():
    """Real Gaia archive XP_CONTINUOUS files, copied into tests/data."""
    if not os.path.exists(os.path.join(DATA_DIR, "XP_CONTINUOUS_RAW.csv")):
        pytest.fail(f"Gaia XP_CONTINUOUS test files not found in {DATA_DIR}")
    return DATA_DIR
