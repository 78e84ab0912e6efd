"""What the commands read: JSON options and the stars to fit, with errors that say what to fix."""

import numpy as np

from bayesfm.common.errors import DataError

__all__ = ["json_object", "load_stars", "catalogue_stars", "streamed_parts"]


def json_object(text: str, what: str) -> dict:
    """A JSON object from ``text``; DataError naming ``what`` if it is not one."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{what} is not valid JSON ({err.msg} at character {err.pos})") from err
    if not isinstance(value, dict):
        raise DataError(f"{what} must be a JSON object ({{...}}), not a {type(value).__name__}")
    return value


def load_stars(args, binning):
    """The stars to fit: shipped examples, a table, or Gaia archive XP files."""
    if args.xp:
        from bayesfm.sources.archive import read_xp_continuous

        return read_xp_continuous(args.xp, binning)
    if args.table:
        from bayesfm.sources.tables import read_table

        column_map = json_object(args.column_map, "--column-map") if args.column_map else None
        return read_table(args.table, column_map, binning)
    from bayesfm.sources.examples import load_example_stars

    return load_example_stars(binning).tokens


def catalogue_stars(args, binning):
    """The catalogue's stars: a table, Gaia archive XP files, or a split of the library."""
    if args.split:
        from bayesfm.sources.library import load_library
        from bayesfm.tokens.split import split_mask

        tokens = load_library(binning=binning).tokens
        return tokens.take(np.flatnonzero(split_mask(tokens.source_id, args.split)))
    if args.table is None and args.xp is None:
        raise DataError("give a table, --xp FILE or --split {train,validation,test}")
    return load_stars(args, binning)


def streamed_parts(args, binning):
    """The input as parts read one at a time (``bayesfm.sources.parts``) when it is a
    directory or glob of XP files or a Parquet table; None for an input read whole."""
    from pathlib import Path

    from bayesfm.sources import parts

    if args.xp and not Path(args.xp).is_file():
        stream = parts.xp_file_parts(args.xp, binning)
    elif args.table and str(args.table).endswith(".parquet"):
        column_map = json_object(args.column_map, "--column-map") if args.column_map else None
        stream = parts.parquet_parts(args.table, binning, args.rows_per_part, column_map)
    else:
        return None
    if args.limit is not None:
        raise DataError("--limit needs an input read whole (one table or one XP file)")
    return stream
