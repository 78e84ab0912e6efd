"""APOGEE-like tables of labels and photometry (FITS, CSV, ECSV) with a column mapping."""

from pathlib import Path

import numpy as np
from astropy.table import Table

from bayesfm.common.errors import DataError
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import KNOWN_COLUMNS, tokens_from_columns
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["read_table_columns", "read_table", "column_sources"]


def read_table_columns(path, column_map: dict | None = None) -> dict:
    """bayesfm columns from a table file.

    Args:
        path: FITS, CSV or ECSV table, one row per star.
        column_map: bayesfm column name -> the table's column name, for the columns
            whose names differ (e.g. ``{"source_id": "GAIAEDR3_SOURCE_ID", "teff": "TEFF"}``).
            Table columns that are neither mapped nor known bayesfm names are ignored.

    Returns:
        Arrays by bayesfm column name (see ``bayesfm.tokens.KNOWN_COLUMNS``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such table: {path}")
    try:
        table = Table.read(path)
    except Exception as err:  # astropy raises many types for unreadable files
        raise DataError(f"cannot read {path} as a FITS, CSV or ECSV table: {err}") from err
    sources = column_sources(table.colnames, column_map, path.name)
    columns = {
        ours: _filled(table[theirs]) for ours, theirs in sources.items() if ours != "source_id"
    }
    if "source_id" in sources:  # its own type, never through a float
        columns["source_id"] = table[sources["source_id"]]
    return columns


def column_sources(colnames, column_map: dict | None, where: str) -> dict:
    """bayesfm column name -> the table's column name: the known names the table has, and
    ``column_map``'s (DataError for unknown bayesfm names or absent table columns)."""
    column_map = dict(column_map or {})
    unknown = sorted(set(column_map) - KNOWN_COLUMNS)
    if unknown:
        raise DataError(
            f"column_map names unknown bayesfm column(s) {unknown}; known: {sorted(KNOWN_COLUMNS)}"
        )
    absent = sorted(theirs for theirs in column_map.values() if theirs not in colnames)
    if absent:
        raise DataError(f"{where} has no column(s) {absent}; it has {list(colnames)}")
    mapped = set(column_map.values())
    sources = {name: name for name in colnames if name in KNOWN_COLUMNS and name not in mapped}
    sources.update(column_map)
    return sources


def read_table(
    path, column_map: dict | None = None, binning: XPBinning = XPBinning()
) -> StarTokens:
    """Tokens of the stars in a table file (see ``read_table_columns``)."""
    return tokens_from_columns(read_table_columns(path, column_map), binning)


def _filled(column):
    """A plain array, masked entries as NaN (float) so they become absent tokens."""
    if getattr(column, "mask", None) is not None and np.any(column.mask):
        return np.ma.filled(column.astype(np.float64), np.nan)
    return np.asarray(column)
