"""Settings files say only what differs from the defaults, round-trip exactly, and name
unknown keys."""

import json

import pytest

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.errors import DataError
from bayesfm.model.train_config import RunConfig, TrainConfig


def test_a_partial_catalogue_config_keeps_every_other_default_and_round_trips():
    config = CatalogueConfig.from_dict(
        {"nuts": {"num_samples": 250}, "convergence": {"max_rhat": 1.02}}
    )
    assert (
        config.nuts.num_samples == 250
        and config.nuts.num_warmup == CatalogueConfig().nuts.num_warmup
    )
    # the catalogue's own convergence default (bulk ESS 200), not the class's, stays
    assert config.convergence.max_rhat == 1.02 and config.convergence.min_ess_bulk == 200.0
    assert CatalogueConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_keys_are_named_at_any_depth():
    with pytest.raises(DataError, match=r"unknown catalogue.nuts setting\(s\) \['num_sample'\]"):
        CatalogueConfig.from_dict({"nuts": {"num_sample": 250}})
    with pytest.raises(DataError, match="must be a JSON object"):
        CatalogueConfig.from_dict({"nuts": [250]})


def test_a_run_file_with_one_field_is_the_default_run_but_that_field(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"training": {"max_steps": 7}, "task_mix": {"emulator": 0.5, "random": 0.1}})
    )
    run = RunConfig.from_file(path)
    assert run.training == TrainConfig(max_steps=7)
    assert run.task_mix.emulator == 0.5 and run.task_mix.random == 0.1
    assert run.binning == RunConfig().binning and run.seed == 0
    assert RunConfig.from_file(_written(tmp_path, run.to_dict())) == run


def _written(tmp_path, data):
    path = tmp_path / "again.json"
    path.write_text(json.dumps(data))
    return path
