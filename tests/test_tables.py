import numpy as np
import pytest
from astropy.table import Table

from bayesfm.errors import DataError
from bayesfm.tables import read_table


def _write(tmp_path, name="stars.csv"):
    table = Table(
        {
            "GAIA_ID": [11, 12, 13],
            "TEFF": [4800.0, 5200.0, np.nan],
            "TEFF_ERR": [60.0, 80.0, np.nan],
            "logg": [2.5, 4.4, 4.0],
            "logg_err": [0.05, 0.04, 0.05],
            "J": [10.0, 11.0, 12.0],
            "k": [9.3, 10.6, 11.5],
            "notes": ["a", "b", "c"],
        }
    )
    path = tmp_path / name
    table.write(path)
    return path


MAP = {"source_id": "GAIA_ID", "teff": "TEFF", "teff_err": "TEFF_ERR", "j": "J"}


@pytest.mark.parametrize("name", ["stars.csv", "stars.fits", "stars.ecsv"])
def test_table_with_column_map(tmp_path, name):
    tokens = read_table(_write(tmp_path, name), MAP)
    assert tokens.source_id.tolist() == [11, 12, 13]
    teff, _ = tokens.column("teff")
    assert teff[:2].tolist() == [4800.0, 5200.0] and np.isnan(teff[2])
    j_k, _ = tokens.column("j_k")
    np.testing.assert_allclose(j_k, [0.7, 0.4, 0.5], atol=1e-6)
    assert not tokens.present[:, tokens.index(["xp_510"])[0]].any()


def test_bad_mappings_are_errors(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(DataError, match="unknown bayesfm column"):
        read_table(path, {**MAP, "vmag": "V"})
    with pytest.raises(DataError, match="has no column"):
        read_table(path, {**MAP, "h": "H_MAG"})
    with pytest.raises(DataError, match="no such table"):
        read_table(tmp_path / "nope.fits", MAP)
