"""Files bayesfm writes and ships: atomic writes, and the package's own data folder."""

import contextlib
import os
from importlib.resources import files
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "shipped_data_path"]


@contextlib.contextmanager
def atomic_path(path, keep_suffix: bool = False):
    """Yield a temporary path next to ``path`` to write to; on success it replaces ``path``
    in one step, so readers see the old file or the whole new one, never a part.

    The temporary name is ``<name>.tmp``, or ``<stem>.tmp<suffix>`` with ``keep_suffix``
    (for writers that choose a format by extension: NumPy's .npz, astropy's .fits).
    """
    path = Path(path)
    name = f"{path.stem}.tmp{path.suffix}" if keep_suffix else f"{path.name}.tmp"
    tmp = path.with_name(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def shipped_data_path(name: str) -> Path:
    """A file in the installed package's ``bayesfm/data`` folder."""
    return Path(str(files("bayesfm") / "data" / name))
