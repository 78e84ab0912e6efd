import json

import numpy as np
import pytest

from bayesfm.foundation_model import FoundationModel
from bayesfm.library import load_library
from bayesfm.training import RunConfig, TrainConfig, train

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
