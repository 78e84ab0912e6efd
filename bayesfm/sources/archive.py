"""Users' own Gaia stars: archive ``XP_CONTINUOUS`` files to sampled spectra and tokens.

GaiaXPy converts the BP/RP basis coefficients to spectra on the library's 343-point
grid, offline, from a csv, ecsv or fits file (or a DataFrame) as the archive gives it.
"""

import gzip
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

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
        with warnings.catch_warnings():  # GaiaXPy's own pandas deprecation notices
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


def read_xp_continuous(source, binning: XPBinning = XPBinning()) -> StarTokens:
    """XP flux tokens of the sources in an archive XP_CONTINUOUS file (see ``sample_xp_continuous``)."""
    return tokens_from_columns(sample_xp_continuous(source), binning)


def _gunzipped(path: Path, folder: Path) -> Path:
    """``path`` decompressed into ``folder``, keeping the inner suffix GaiaXPy reads by."""
    plain = folder / path.with_suffix("").name
    try:
        with gzip.open(path, "rb") as compressed, open(plain, "wb") as out:
            shutil.copyfileobj(compressed, out)
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable gzip file: {err}") from err
    return plain
