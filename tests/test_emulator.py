"""The emulator is queried exactly as training's emulator task queried the transformer."""

import jax.numpy as jnp
import numpy as np

from bayesfm.model.batching import EmulatorQuery, TaskMix, sample_batch
from bayesfm.model.emulator import make_emulator
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.train_step import normalise_stars
from bayesfm.tokens.labels import LABEL_INPUTS


def test_emulator_equals_the_transformer_on_the_emulator_task_context(example_stars, rng):
    model = FoundationModel.load()
    vocabulary = model.vocabulary
    stars = example_stars.tokens
    complete = np.isfinite(stars.values[:, stars.index(LABEL_INPUTS)]).all(axis=1)
    stars = stars.take(np.flatnonzero(complete)[:3])
    normalised = normalise_stars(stars, vocabulary)
    groups = np.array([s.group for s in vocabulary.specs])
    query = EmulatorQuery.build(vocabulary, model.info["emulator_context_errors"])
    batch = sample_batch(
        rng,
        normalised.values,
        normalised.errors,
        normalised.present,
        np.isin(groups, ["label", "extinction"]),
        np.isin(groups, ["xp_bp", "xp_rp", "colour"]),
        TaskMix(0.0, 0.0, 0.0, 1.0),
        max_targets=len(vocabulary),
        emulator_query=query,
    )
    mean, log_var = model.module()(*batch[:5])
    emulator = make_emulator(model)
    out_index = vocabulary.index(emulator.outputs)
    for row in range(len(stars)):
        expected_mean, expected_sigma = emulator(
            jnp.asarray(stars.values[row, stars.index(LABEL_INPUTS)])
        )
        targets = np.asarray(batch.target_index[row])[batch.target_mask[row]]
        position = {int(t): k for k, t in enumerate(out_index)}
        k = [position[int(t)] for t in targets]
        got_mean, got_sigma = vocabulary.denormalise(
            np.asarray(mean[row])[batch.target_mask[row]],
            np.sqrt(np.exp(np.asarray(log_var[row])))[batch.target_mask[row]],
            targets,
        )
        assert len(k) >= 30
        np.testing.assert_allclose(got_mean, np.asarray(expected_mean)[k], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(got_sigma, np.asarray(expected_sigma)[k], rtol=2e-4)
