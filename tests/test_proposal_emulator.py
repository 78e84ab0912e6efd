"""The proposal emulator: distilled from the emulator, saved beside it, used only for its model."""

import json
from dataclasses import replace

import jax
import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.infer.setup import StarInference
from bayesfm.model.emulator import emulator_fingerprint
from bayesfm.model.proposal_emulator import (
    ProposalEmulatorConfig,
    as_emulator,
    distil_proposal_emulator,
    load_proposal_emulator,
    save_proposal_emulator,
)

SMALL = ProposalEmulatorConfig(
    hidden=(64, 64), samples=20000, steps=1500, batch_size=256, learning_rate=3e-3, seed=1
)


@pytest.fixture(scope="module")
def distilled():
    """The shipped setup, the output scaling and a small MLP distilled from its emulator."""
    setup = StarInference.default()
    out_scaling = setup.model.vocabulary.scaling(setup.emulator.outputs)
    error = np.full(len(setup.emulator.outputs), 0.05)
    layers = distil_proposal_emulator(
        setup.emulator, setup.prior, setup.scaling, out_scaling, error, SMALL, progress=False
    )
    return setup, out_scaling, layers


def test_the_distilled_mlp_follows_the_emulator_over_the_prior(distilled):
    setup, out_scaling, layers = distilled

    x = np.asarray(setup.prior.sample(jax.random.PRNGKey(42), (500,)))
    teacher = out_scaling.normalise(setup.emulator.batch(x)[0])
    student = out_scaling.normalise(
        as_emulator(layers, setup.emulator, setup.scaling, out_scaling).batch(x)[0]
    )
    spread = np.median(np.abs(teacher - teacher.mean(axis=0)))
    # a few thousand steps get within a tenth of the outputs' spread (untrained: 0.9)
    assert np.median(np.abs(student - teacher)) < 0.2 * spread


def test_a_saved_proposal_emulator_loads_only_for_its_model(distilled, tmp_path):
    setup, out_scaling, layers = distilled
    path = tmp_path / "proposal"
    save_proposal_emulator(path, layers, emulator_fingerprint(setup.model), SMALL)
    args = (setup.emulator, setup.scaling, out_scaling, path)
    loaded = load_proposal_emulator(emulator_fingerprint(setup.model), *args)
    x = np.asarray(setup.scaling.physical(np.zeros((3, 5))), np.float32)
    direct = as_emulator(layers, setup.emulator, setup.scaling, out_scaling)
    for a, b in zip(loaded.batch(x), direct.batch(x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_proposal_emulator("another emulator's fingerprint", *args) is None
    refitted = replace(setup.model, info={**setup.model.info, "emulator_sigma_factors": {}})
    assert emulator_fingerprint(refitted) != emulator_fingerprint(setup.model)
    assert (
        load_proposal_emulator(emulator_fingerprint(setup.model), *args[:3], tmp_path / "none")
        is None
    )


def test_a_proposal_emulator_for_other_tokens_or_damaged_is_refused(distilled, tmp_path):
    setup, out_scaling, layers = distilled
    args = (setup.emulator, setup.scaling, out_scaling)
    wrong = (*layers[:-1], (layers[-1][0][:, :10], layers[-1][1][:10]))
    save_proposal_emulator(tmp_path / "wrong", wrong, emulator_fingerprint(setup.model), SMALL)
    with pytest.raises(DataError, match="refit it"):
        load_proposal_emulator(emulator_fingerprint(setup.model), *args, tmp_path / "wrong")
    save_proposal_emulator(tmp_path / "damaged", layers, emulator_fingerprint(setup.model), SMALL)
    (tmp_path / "damaged.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="readable"):
        load_proposal_emulator(emulator_fingerprint(setup.model), *args, tmp_path / "damaged")
    meta = json.loads((tmp_path / "wrong.json").read_text())
    assert meta["emulator_fingerprint"] == emulator_fingerprint(setup.model)
