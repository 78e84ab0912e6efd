"""The validation report's registry and settings (validation/report.py runs them)."""

import sys
from pathlib import Path

import pytest

from bayesfm.common.errors import DataError

VALIDATION = Path(__file__).parents[1] / "validation"
sys.path.insert(0, str(VALIDATION))

from report_config import ValidationConfig  # noqa: E402
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
