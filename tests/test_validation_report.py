"""The validation report's registry and settings (validation/report.py runs them)."""

import json
import sys
from pathlib import Path

import pytest

from bayesfm.common.errors import DataError

VALIDATION = Path(__file__).parents[1] / "validation"
sys.path.insert(0, str(VALIDATION))

from report_config import ValidationConfig  # noqa: E402
from report_progress import PARTIAL_FIGURES, publish, save_progress, saved_sections  # noqa: E402
from sections import NAMES, REGISTRY, compute_order  # noqa: E402


def test_every_section_has_the_registry_interface():
    assert len(set(NAMES)) == len(NAMES)
    for section in REGISTRY:
        assert callable(section.compute) and callable(section.markdown), section.NAME
        assert set(section.USES) <= set(NAMES), section.NAME


def test_sections_are_computed_after_those_they_use():
    order = [section.NAME for section in compute_order(["misfit", "loci"])]
    assert order == ["heldout", "sbc", "misfit", "loci"]
    full = [section.NAME for section in compute_order(NAMES)]
    assert sorted(full) == sorted(NAMES)
    for section in REGISTRY:
        assert all(full.index(used) < full.index(section.NAME) for used in section.USES)


@pytest.mark.parametrize("path", sorted((VALIDATION.parent / "configs/validation").glob("*.json")))
def test_shipped_validation_configs_load(path):
    config = ValidationConfig.load(path)
    assert config != ValidationConfig()  # a file says only what differs
    assert config.catalogue_settings("nuts").method == "nuts"
    assert config.catalogue_settings("importance").save_draws


def test_unknown_validation_setting_is_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"sbc_star": 10}')
    with pytest.raises(DataError, match="sbc_star"):
        ValidationConfig.load(path)


def test_finished_sections_survive_a_stop_and_publish_replaces_the_report(tmp_path):
    config, names = {"seed": 0}, ("heldout", "sbc")
    results = {"config": config, "model_prior_noise_sha256": "abc"}
    results["heldout"] = {"coverage": 0.5, "arrays": {"medians": [1.0]}}
    save_progress(tmp_path, results, names)
    assert saved_sections(tmp_path, config, "abc", names) == {"heldout": {"coverage": 0.5}}
    assert saved_sections(tmp_path, config, "another model", names) == {}
    assert saved_sections(tmp_path, {"seed": 1}, "abc", names) == {}

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "accuracy.png").write_text("old model")
    (tmp_path / PARTIAL_FIGURES).mkdir()
    (tmp_path / PARTIAL_FIGURES / "accuracy.png").write_text("new model")
    results["sbc"] = {"passed": True}
    publish(tmp_path, results, names, "# report")
    assert (tmp_path / "figures" / "accuracy.png").read_text() == "new model"
    assert (tmp_path / "REPORT.md").read_text() == "# report"
    assert "arrays" not in json.loads((tmp_path / "results.json").read_text())["heldout"]
    assert saved_sections(tmp_path, config, "abc", names) == {}  # nothing left to resume
    assert not (tmp_path / PARTIAL_FIGURES).exists()
