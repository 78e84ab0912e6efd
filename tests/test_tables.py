import numpy as np
import pytest
from astropy.table import Table

from bayesfm.common.errors import DataError
from bayesfm.sources.tables import read_table


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


def test_a_blank_source_id_is_an_error_naming_its_row(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("source_id,teff,teff_err\n1392245298613681536,5000,50\n,5100,50\n")
    with pytest.raises(DataError, match=r"rows \[1\]"):
        read_table(path)


def test_float_source_ids_are_refused_not_rounded(tmp_path):
    path = tmp_path / "floats.csv"
    path.write_text("source_id,teff,teff_err\n1.392245298613681536e18,5000,50\n")
    with pytest.raises(DataError, match="floating-point"):
        read_table(path)


def test_nineteen_digit_source_ids_survive_exactly(tmp_path):
    ids = [1392245298613681536, 5853498713190525696, 9223372036854775807]
    path = tmp_path / "ids.csv"
    path.write_text("source_id,teff,teff_err\n" + "".join(f"{i},5000,50\n" for i in ids))
    assert read_table(path).source_id.tolist() == ids
    Table({"source_id": [str(i) for i in ids], "teff": [5000.0] * 3, "teff_err": [50.0] * 3}).write(
        tmp_path / "strings.fits"
    )
    assert read_table(tmp_path / "strings.fits").source_id.tolist() == ids
