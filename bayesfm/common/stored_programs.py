"""Traced programs kept on disk: a new process's first call of a large program skips tracing.

jax's compilation cache keeps compiled programs, but a new process still traces and lowers
every program before the cache can serve it: about 13 s of a catalogue worker's first chunk
on a 2-core CPU, and 8 s more for NUTS (docs/performance.md). ``stored_jit`` keeps each
program's traced, lowered form (``jax.export``: StableHLO, no pickle) in a folder, one file
per argument signature, under a key of everything that shapes it: the program's name and
settings (what it closes over, as the caller names it), bayesfm's source and shipped data,
the versions of jax, jaxlib, numpyro and flax, the device kind, the matmul precision and
the arguments' structure, shapes and dtypes. A changed key is a new file; nothing stale runs.

The command line turns the store on next to the compilation cache
(``bayesfm.common.compile_cache``); without ``keep_programs_in`` a stored program is plain
``jax.jit``, as it is under a transformation and with several devices.
"""

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path

import jax
import numpy as np
from jax import export

__all__ = ["stored_jit", "keep_programs_in", "StoredProgram"]

_STORE_FORMAT = 1  # bump when what a file holds changes
_PACKAGE = Path(__file__).resolve().parents[1]
_folder: Path | None = None


def keep_programs_in(folder) -> None:
    """Keep traced programs in ``folder`` (created when the first is written); None: trace
    every program afresh in each process."""
    global _folder
    _folder = None if folder is None else Path(folder)


def stored_jit(fn, name: str, *settings):
    """``jax.jit(fn)``, its traced form kept on disk where ``keep_programs_in`` says.

    ``settings``: everything ``fn`` closes over that can differ between calls of the code
    that builds it (a setup's ``program_key``, numbers of steps or draws), as strings or
    values with a faithful ``repr``. A None among them (something without a fingerprint)
    gives plain ``jax.jit``.
    """
    if any(setting is None for setting in settings):
        return jax.jit(fn)
    return StoredProgram(fn, name, settings)


class StoredProgram:
    """A jitted function whose traced form is read from disk, or traced and written there,
    once per argument signature and process."""

    def __init__(self, fn, name: str, settings):
        self._fn = fn
        self._jitted = jax.jit(fn)
        self.name = name
        self._settings = repr(tuple(settings))
        self._programs = {}

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        if _folder is None or jax.local_device_count() > 1 or _any_tracer(leaves):
            return self._jitted(*args)
        signature = _signature(leaves, tree)
        program = self._programs.get(signature)
        if program is None:
            program = self._programs[signature] = self._exported(signature, leaves, tree)
        return program(*leaves)

    def _exported(self, signature, leaves, tree):
        """``jax.jit`` of the exported program for ``signature``: read, or traced and written;
        where jax cannot export it (a device library call without jax's stability guarantee),
        the program of the leaves as plain ``jax.jit`` traces it in every process."""
        key = hashlib.sha256(
            "\n".join([self.name, self._settings, signature, _environment()]).encode()
        )
        path = _folder / f"{self.name}-{key.hexdigest()}.jaxexport"
        exported = _read(path)
        if exported is None:
            fn = self._fn

            def flat(*flat_args):
                return fn(*jax.tree_util.tree_unflatten(tree, flat_args))

            try:
                exported = export.export(jax.jit(flat))(*leaves)
            except ValueError:
                return jax.jit(flat)
            _write(path, exported.serialize())
        return jax.jit(exported.call)


def _any_tracer(leaves) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _signature(leaves, tree) -> str:
    """The arguments' structure, shapes and dtypes, and the matmul precision in force."""
    shapes = [(np.shape(leaf), str(np.result_type(leaf))) for leaf in leaves]
    return f"{tree}|{shapes}|{jax.config.jax_default_matmul_precision}"


def _read(path: Path):
    """The exported program in ``path``, or None where there is none or it is unreadable
    (a cut-off write: it is traced and written again)."""
    try:
        return export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # a missing file, or any parser's error on a damaged one
        return None


def _write(path: Path, blob) -> None:
    """Write atomically (parallel workers may write the same program); an unwritable folder
    only costs the next process the tracing."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(bytes(blob))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


@functools.cache
def _environment() -> str:
    """What shapes every traced program besides its own settings and arguments."""
    versions = [importlib.metadata.version(p) for p in ("jax", "jaxlib", "numpyro", "flax")]
    device = jax.devices()[0]
    return "|".join(
        [str(_STORE_FORMAT), *versions, device.platform, device.device_kind, _package_digest()]
    )


@functools.cache
def _package_digest() -> str:
    """SHA-256 of bayesfm's source files and shipped data."""
    digest = hashlib.sha256()
    files = sorted(p for p in _PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc")
    for path in files:
        digest.update(str(path.relative_to(_PACKAGE)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
