import json

import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import default_token_specs
from bayesfm.tokens.vocabulary import Vocabulary, fit_vocabulary


@pytest.fixture
def vocabulary(example_stars):
    return fit_vocabulary(example_stars.tokens, default_token_specs(), XPBinning())


def test_normalise_then_denormalise_returns_the_input(vocabulary, example_stars):
    values, errors = example_stars.tokens.values, example_stars.tokens.errors
    z, ze = vocabulary.normalise(values, errors)
    back, back_err = vocabulary.denormalise(z, ze)
    np.testing.assert_allclose(back, values, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(back_err, errors, rtol=1e-12, equal_nan=True)
    index = vocabulary.index(["teff", "logg"])
    z2, _ = vocabulary.normalise(values[:, index], errors[:, index], index)
    np.testing.assert_allclose(z2, z[:, index])


def test_normalisation_is_robust_standardisation(vocabulary, example_stars):
    z, _ = vocabulary.normalise(example_stars.tokens.values, example_stars.tokens.errors)
    teff = z[:, vocabulary.index(["teff"])[0]]
    assert np.median(teff) == pytest.approx(0.0, abs=1e-12)
    assert 1.4826 * np.median(np.abs(teff)) == pytest.approx(1.0)


def test_save_load_round_trip(vocabulary, tmp_path):
    path = tmp_path / "vocabulary.json"
    vocabulary.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.specs == vocabulary.specs and loaded.binning == vocabulary.binning
    np.testing.assert_array_equal(loaded.loc, vocabulary.loc)
    np.testing.assert_array_equal(loaded.scale, vocabulary.scale)
    assert json.loads(path.read_text())["content_hash"] == vocabulary.to_dict()["content_hash"]


def test_edited_or_wrong_version_file_is_rejected(vocabulary, tmp_path):
    data = vocabulary.to_dict()
    data["tokens"][0]["loc"] += 1.0
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="hash"):
        Vocabulary.load(path)
    data = vocabulary.to_dict()
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="version"):
        Vocabulary.load(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a valid"):
        Vocabulary.load(path)


def test_unknown_token_name(vocabulary):
    with pytest.raises(DataError, match="unknown token name.*'vmag'"):
        vocabulary.index(["teff", "vmag"])
