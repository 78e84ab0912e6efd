import gzip
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
from gaiaxpy import calibrate

from bayesfm.common.errors import DataError
from bayesfm.sources.archive import read_xp_continuous, sample_xp_continuous
from bayesfm.tokens.grid import XP_WAVELENGTH_NM, bin_spectra
from bayesfm.tokens.specs import tokens_from_columns

MISSING_BP_SOURCE = 5405570973190252288


@pytest.mark.parametrize("ext", ["csv", "ecsv", "fits"])
def test_archive_spectra_agree_with_gaiaxpy(archive_dir, ext):
    path = os.path.join(archive_dir, f"XP_CONTINUOUS_RAW.{ext}")
    ours = sample_xp_continuous(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, sampling = calibrate(path, save_file=False)  # GaiaXPy's own default grid
    np.testing.assert_allclose(sampling, XP_WAVELENGTH_NM)
    assert ours["source_id"].tolist() == theirs["source_id"].tolist()
    np.testing.assert_allclose(ours["flux"], np.stack(theirs["flux"]), rtol=1e-10)
    np.testing.assert_allclose(ours["flux_error"], np.stack(theirs["flux_error"]), rtol=1e-10)
    tokens = read_xp_continuous(path)
    values, _ = bin_spectra(np.stack(theirs["flux"]), np.stack(theirs["flux_error"]))
    np.testing.assert_allclose(tokens.values[:, : values.shape[1]], values, rtol=1e-10)


def test_formats_agree_and_missing_bp_source_has_no_bp_tokens(archive_dir):
    tokens = {
        ext: read_xp_continuous(
            os.path.join(archive_dir, f"XP_CONTINUOUS_RAW_with_missing_BP.{ext}")
        )
        for ext in ("csv", "ecsv", "fits")
    }
    for ext in ("ecsv", "fits"):
        np.testing.assert_allclose(
            tokens[ext].values, tokens["csv"].values, rtol=1e-6, equal_nan=True
        )
    t = tokens["csv"]
    row = t.source_id.tolist().index(MISSING_BP_SOURCE)
    groups = np.array([name.startswith("xp_") for name in t.names])
    bp = np.array([n.startswith("xp_") and float(n[3:]) < 660 for n in t.names])
    assert not t.present[row, bp].any()  # absent, not zero
    assert t.present[row, groups & ~bp].all()  # RP tokens kept
    others = [i for i in range(len(t)) if i != row]
    assert t.present[np.ix_(others, np.nonzero(groups)[0])].all()


def test_missing_or_malformed_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no such"):
        sample_xp_continuous(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("source_id,foo\n1,2\n")
    with pytest.raises(DataError, match="XP_CONTINUOUS"):
        sample_xp_continuous(bad)


@pytest.mark.parametrize(
    "name", ["XP_CONTINUOUS_RAW_with_missing_BP.csv", "XP_CONTINUOUS_RAW_with_missing_BP.ecsv"]
)
def test_text_files_read_in_blocks_and_gzipped_match_gaiaxpy_whole(archive_dir, tmp_path, name):
    path = os.path.join(archive_dir, name)
    expected = tokens_from_columns(sample_xp_continuous(path))  # GaiaXPy reads the file itself
    packed = tmp_path / f"{name}.gz"
    with open(path, "rb") as plain, gzip.open(packed, "wb") as out:
        shutil.copyfileobj(plain, out)
    for tokens in (read_xp_continuous(path, block_rows=1), read_xp_continuous(packed)):
        np.testing.assert_array_equal(tokens.source_id, expected.source_id)
        np.testing.assert_allclose(tokens.values, expected.values, rtol=1e-12)
        np.testing.assert_allclose(tokens.errors, expected.errors, rtol=1e-12)


@pytest.mark.slow
def test_reading_archive_files_prints_nothing(archive_dir):
    """In a fresh process: GaiaXPy binds its progress bar to the stdout it saw at import."""
    code = (
        "import sys; from bayesfm.sources.archive import read_xp_continuous; "
        "[read_xp_continuous(p) for p in sys.argv[1:]]"
    )
    files = [os.path.join(archive_dir, f"XP_CONTINUOUS_RAW.{ext}") for ext in ("csv", "fits")]
    done = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
