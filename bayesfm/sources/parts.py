"""Catalogue inputs read part by part, so that memory stays bounded however many stars
there are: a directory or glob of Gaia archive XP_CONTINUOUS files (one part per file), or
a Parquet table (one part per block of rows)."""

import glob
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesfm.common.errors import DataError, MissingDataPackageError
from bayesfm.sources.archive import read_xp_continuous
from bayesfm.sources.tables import column_sources
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import tokens_from_columns
from bayesfm.tokens.star_tokens import StarTokens

__all__ = [
    "InputPart",
    "XP_SUFFIXES",
    "xp_files",
    "xp_file_parts",
    "parquet_parts",
    "arrow_column_values",
]

XP_SUFFIXES = (".csv", ".ecsv", ".fits", ".csv.gz", ".ecsv.gz", ".fits.gz")


@dataclass(frozen=True)
class InputPart:
    """One part of a catalogue's input.

    Attributes:
        name: Unique within the input; names the part's folder of results.
        identity: SHA-256 of the bytes it is read from (and which rows): a resumed run
            checks it, so a changed file is never mixed with earlier results.
        load: Reads the part's stars.
    """

    name: str
    identity: str
    load: Callable[[], StarTokens]


def xp_files(location) -> list[Path]:
    """The XP_CONTINUOUS files (csv, ecsv, fits, each optionally .gz) at ``location``: one
    file, every such file in a directory, or a glob pattern; sorted by name."""
    path = Path(location)
    if path.is_file():
        files = [path]
    else:
        candidates = path.iterdir() if path.is_dir() else map(Path, glob.glob(str(location)))
        files = sorted(p for p in candidates if p.name.endswith(XP_SUFFIXES) and p.is_file())
    if not files:
        raise DataError(
            f"no Gaia XP_CONTINUOUS files ({', '.join(XP_SUFFIXES)}) at {location}: give a "
            "file, a directory or a glob pattern"
        )
    names = [p.name for p in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"several input files are named {repeated}; file names must be unique")
    return files


def xp_file_parts(location, binning: XPBinning = XPBinning()) -> Iterator[InputPart]:
    """One part per XP_CONTINUOUS file at ``location`` (see ``xp_files``, checked at once);
    a file is read only when its part is loaded."""
    return (
        InputPart(path.name, file_sha256(path), lambda p=path: read_xp_continuous(p, binning))
        for path in xp_files(location)
    )


def parquet_parts(
    path, binning: XPBinning = XPBinning(), rows_per_part: int = 50_000, column_map=None
) -> Iterator[InputPart]:
    """Parts of ``rows_per_part`` rows of a Parquet table with bayesfm's columns (see
    ``bayesfm.tokens.KNOWN_COLUMNS``; ``column_map`` as for ``read_table``), read block by
    block. ``flux`` and ``flux_error`` are list columns of the 343 XP pixels. The file and
    its columns are checked at once."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise MissingDataPackageError(
            "reading Parquet tables needs pyarrow: pip install 'bayesfm[catalogue]'"
        ) from err
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such Parquet table: {path}")
    try:
        table = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"cannot read {path} as a Parquet table: {err}") from err
    sources = column_sources(table.schema_arrow.names, column_map, path.name)
    batches = table.iter_batches(batch_size=rows_per_part, columns=sorted(set(sources.values())))
    return _parquet_parts(batches, sources, file_sha256(path), binning, rows_per_part)


def _parquet_parts(batches, sources, identity, binning, rows_per_part):
    for k, batch in enumerate(batches):
        columns = {
            ours: arrow_column_values(batch.column(theirs)) for ours, theirs in sources.items()
        }
        tokens = tokens_from_columns(columns, binning)
        first = k * rows_per_part
        yield InputPart(
            f"rows_{first:012d}", f"{identity}:{first}:{len(batch)}", lambda t=tokens: t
        )


def arrow_column_values(column) -> np.ndarray:
    """A Parquet column as numpy: list columns as [rows, length], nulls as NaN (and
    integer source ids with nulls as a masked array, which ``source_ids`` rejects)."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        lengths = set(column.value_lengths().to_pylist())
        if len(lengths) > 1 or None in lengths:
            raise DataError("list columns (flux, flux_error) need the same length in every row")
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        return values.reshape(len(column), -1)
    if pa.types.is_integer(column.type) and column.null_count:
        return np.ma.masked_array(
            column.fill_null(0).to_numpy(), mask=column.is_null().to_numpy(zero_copy_only=False)
        )
    return column.to_numpy(zero_copy_only=False)


def file_sha256(path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
