"""Users' own Gaia stars: archive ``XP_CONTINUOUS`` files to sampled spectra and tokens.

GaiaXPy converts the BP/RP basis coefficients to spectra on the library's 343-point
grid, offline, from a csv, ecsv or fits file (or a DataFrame) as the archive gives it.
"""

import contextlib
import gzip
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayesfm.common.errors import DataError, MissingDataPackageError
from bayesfm.tokens.grid import XP_WAVELENGTH_NM, XPBinning
from bayesfm.tokens.specs import tokens_from_columns
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["sample_xp_continuous", "read_xp_continuous"]


def sample_xp_continuous(source) -> dict:
    """Sampled spectra of the sources in an archive XP_CONTINUOUS file.

    Args:
        source: Path to a csv/ecsv/fits archive file (optionally gzipped, as the archive's
            bulk download gives them), or a pandas DataFrame of it.

    Returns:
        Columns ``source_id`` [N], ``flux`` and ``flux_error`` [N, 343] [W m^-2 nm^-1];
        NaN for pixels a missing BP or RP solution does not cover.
    """
    try:
        from gaiaxpy import calibrate
    except ImportError as err:
        raise MissingDataPackageError(
            "reading Gaia XP_CONTINUOUS files needs GaiaXPy; install it with: pip install gaiaxpy"
        ) from err
    if isinstance(source, str | Path) and not Path(source).exists():
        raise DataError(f"no such XP_CONTINUOUS file: {source}")
    if isinstance(source, str | Path) and Path(source).suffix == ".gz":
        with tempfile.TemporaryDirectory() as folder:
            return sample_xp_continuous(_gunzipped(Path(source), Path(folder)))
    try:
        with warnings.catch_warnings(), _silenced():  # GaiaXPy's notices, prints, progress bar
            warnings.simplefilter("ignore")
            # The default sampling is the library's grid and uses GaiaXPy's precomputed
            # design matrices; an explicit sampling array recomputes them (~0.1% apart).
            spectra, sampling = calibrate(source, save_file=False)
    except Exception as err:  # GaiaXPy raises many types for a malformed input
        raise DataError(
            f"GaiaXPy could not read {source!r} as Gaia XP_CONTINUOUS data: {err}"
        ) from err
    if not np.allclose(sampling, XP_WAVELENGTH_NM):
        raise DataError("GaiaXPy returned spectra on an unexpected wavelength grid")
    return {
        "source_id": spectra["source_id"].to_numpy().astype(np.int64),
        "flux": np.stack(spectra["flux"].to_numpy()).astype(np.float64),
        "flux_error": np.stack(spectra["flux_error"].to_numpy()).astype(np.float64),
    }


def read_xp_continuous(
    source, binning: XPBinning = XPBinning(), block_rows: int = 1000
) -> StarTokens:
    """XP flux tokens of the sources in an archive XP_CONTINUOUS file (see
    ``sample_xp_continuous``). Text files (csv, ecsv, gzipped or not) are sampled
    ``block_rows`` sources at a time, so that memory grows with the tokens (under 1 KB a
    source), not with GaiaXPy's working arrays (about 200 KB a source)."""
    blocks = _text_blocks(source, block_rows)
    if blocks is None:
        return tokens_from_columns(sample_xp_continuous(source), binning)
    parts = [tokens_from_columns(sample_xp_continuous(frame), binning) for frame in blocks]
    if not parts:
        raise DataError(f"{source} holds no sources")
    return StarTokens(
        np.concatenate([p.source_id for p in parts]),
        parts[0].names,
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.errors for p in parts]),
    )


def _text_blocks(source, block_rows: int):
    """The rows of a csv/ecsv file (gzipped or not) as DataFrames of ``block_rows``; None for
    other inputs (fits files and DataFrames go to GaiaXPy whole)."""
    if not isinstance(source, str | Path) or not str(source).endswith(_TEXT_SUFFIXES):
        return None
    if not Path(source).exists():
        raise DataError(f"no such XP_CONTINUOUS file: {source}")
    return _read_blocks(source, block_rows)


def _read_blocks(source, block_rows: int):
    try:  # ECSV's header lines start with '#'
        for frame in pd.read_csv(source, comment="#", chunksize=block_rows):
            yield _arrays_in_parentheses(frame)
    except (ValueError, OSError, EOFError) as err:  # pandas' parser and gzip errors
        raise DataError(f"cannot read {source} as an XP_CONTINUOUS csv/ecsv file: {err}") from err


def _arrays_in_parentheses(frame):
    """Array columns written "[a,b]" (ECSV) rewritten as the archive csv's "(a, b)", the
    form GaiaXPy's table reader parses."""
    for column in frame.columns:
        text = frame[column]
        present = text.dropna()  # a source without a BP or RP solution leaves blanks
        if len(present) and isinstance(present.iloc[0], str) and present.iloc[0].startswith("["):
            frame[column] = "(" + text.str.strip("[]").str.replace(",", ", ") + ")"
    return frame


_TEXT_SUFFIXES = (".csv", ".ecsv", ".csv.gz", ".ecsv.gz")


@contextlib.contextmanager
def _silenced():
    """Standard output and error sent to the null device, at the file-descriptor level:
    GaiaXPy writes its progress bar to the ``sys.stdout`` it saw at import."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def _gunzipped(path: Path, folder: Path) -> Path:
    """``path`` decompressed into ``folder``, keeping the inner suffix GaiaXPy reads by."""
    plain = folder / path.with_suffix("").name
    try:
        with gzip.open(path, "rb") as compressed, open(plain, "wb") as out:
            shutil.copyfileobj(compressed, out)
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable gzip file: {err}") from err
    return plain
