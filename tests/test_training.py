import json
from dataclasses import replace

import jax
import numpy as np
import pytest
from flax import nnx

from bayesfm.common.errors import DataError
from bayesfm.common.pytree_io import flatten_named
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.train_config import RunConfig, TrainConfig
from bayesfm.model.train_step import gaussian_nll
from bayesfm.model.training import train
from bayesfm.sources.library import load_library

TINY = dict(width=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, mlp_width=32)


@pytest.fixture(scope="module")
def some_stars():
    return load_library().tokens.take(np.arange(600))  # a few hundred stars of every split


def test_train_two_steps_checkpoints_and_resumes(some_stars, tmp_path, capsys):
    settings = TrainConfig(batch_size=16, max_steps=2, warmup_steps=1, eval_every=1, val_stars=32)
    run = RunConfig(seed=0, model=TINY, training=settings)
    model = train(run, some_stars, tmp_path, progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(np.isfinite(m["val_nll"]) for m in metrics)
    assert (tmp_path / "checkpoint.npz").exists() and (tmp_path / "best.safetensors").exists()
    assert json.loads((tmp_path / "config.json").read_text()) == run.to_dict()
    assert model.info["data_hash"] and model.n_parameters > 0
    # a rerun resumes from the checkpoint instead of starting again
    again = train(run, some_stars, tmp_path, progress=False)
    assert "resuming from step 2" in capsys.readouterr().out
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    reloaded = FoundationModel.load(tmp_path / "best")
    assert reloaded.vocabulary.names == again.vocabulary.names


def test_per_star_loss_weights_each_star_equally():
    mean = np.zeros((2, 3), np.float32)
    log_variance = np.zeros((2, 3), np.float32)
    value = np.array([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0]], np.float32)
    error = np.zeros((2, 3), np.float32)
    mask = np.array([[True, True, True], [True, False, False]])
    terms = 0.5 * (np.log(2 * np.pi) + value**2)
    per_token = float(gaussian_nll(mean, log_variance, value, error, mask))
    per_star = float(gaussian_nll(mean, log_variance, value, error, mask, per_star=True))
    np.testing.assert_allclose(per_token, terms[mask].mean(), rtol=1e-6)
    np.testing.assert_allclose(per_star, (terms[0].mean() + terms[1, 0]) / 2, rtol=1e-6)


def test_beta_nll_weights_the_mean_gradient_by_variance_to_the_beta():
    value = np.array([[1.0, 1.0]], np.float32)
    log_variance = np.log(np.array([[1.0, 4.0]], np.float32))
    error, mask = np.zeros((1, 2), np.float32), np.ones((1, 2), bool)

    def mean_gradient(beta):
        def loss(mean):
            return gaussian_nll(mean, log_variance, value, error, mask, beta=beta)

        return np.asarray(jax.grad(loss)(np.zeros((1, 2), np.float32)))[0]

    plain, half, full = mean_gradient(0.0), mean_gradient(0.5), mean_gradient(1.0)
    np.testing.assert_allclose(plain[1] / plain[0], 1 / 4, rtol=1e-6)  # NLL: 1 / variance
    np.testing.assert_allclose(half[1] / half[0], 1 / 2, rtol=1e-6)
    np.testing.assert_allclose(full, plain * [1, 4], rtol=1e-6)  # squared error's weighting
    np.testing.assert_allclose(  # the value itself is the variance-weighted NLL
        float(gaussian_nll(np.zeros((1, 2)), log_variance, value, error, mask, beta=1.0)),
        np.mean(0.5 * (np.log(2 * np.pi * np.array([1.0, 4.0])) + [1.0, 0.25]) * [1.0, 4.0]),
        rtol=1e-6,
    )


@pytest.mark.slow
def test_warm_start_keeps_the_weights_and_may_grow_a_pooled_summary(some_stars, tmp_path):
    settings = TrainConfig(batch_size=16, max_steps=2, warmup_steps=1, eval_every=1, val_stars=32)
    start = train(RunConfig(model=TINY, training=settings), some_stars, tmp_path / "a", False)
    frozen = replace(settings, learning_rate=0.0, loss_per_star=True)
    grown_run = RunConfig(
        model={**TINY, "summary_width": 8}, training=frozen, init_from=str(tmp_path / "a" / "best")
    )
    grown = train(grown_run, some_stars, tmp_path / "b", progress=False)
    old = flatten_named(nnx.to_pure_dict(start.params))
    new = flatten_named(nnx.to_pure_dict(grown.params))
    assert set(new) - set(old) and all(name.startswith("summary") for name in set(new) - set(old))
    for name, array in old.items():
        np.testing.assert_array_equal(new[name], array)
    other = RunConfig(model={**TINY, "width": 8}, training=frozen, init_from=grown_run.init_from)
    with pytest.raises(DataError, match="init_from model"):
        train(other, some_stars, tmp_path / "c", progress=False)
