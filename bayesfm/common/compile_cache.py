"""A persistent cache of compiled programs: a command's second run skips XLA's compilation.

A catalogue run compiles its mode search, importance sampler, NUTS fallback and checks once per
batch shape, about a minute on a 2-core CPU (docs/performance.md); jax can keep the compiled
programs on disk, and bayesfm keeps the traced programs next to them
(``bayesfm.common.stored_programs``), so that a new process skips tracing them too. The
command line turns both on (``enable_compilation_cache``); the library leaves jax's settings
alone. The folder is ``$BAYESFM_COMPILATION_CACHE`` (``off`` disables it), by default
``$XDG_CACHE_HOME/bayesfm/jax`` (``~/.cache/bayesfm/jax``); a folder already set through jax's
own ``JAX_COMPILATION_CACHE_DIR`` is kept. Like any compilation cache it runs what it holds:
keep it where only you can write.
"""

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "enable_compilation_cache"]

CACHE_ENV = "BAYESFM_COMPILATION_CACHE"
_MIN_COMPILE_SECONDS = 0.0  # every program is stored: many small ones added up to seconds
_PROGRAMS = "programs"  # the traced programs' subfolder


def enable_compilation_cache() -> Path | None:
    """Point jax's persistent compilation cache at bayesfm's folder (before the first
    compilation); the folder in use, or None where disabled."""
    import jax

    from bayesfm.common.stored_programs import keep_programs_in

    if jax.config.jax_compilation_cache_dir:
        folder = Path(jax.config.jax_compilation_cache_dir)
        keep_programs_in(folder / _PROGRAMS)
        return folder
    setting = os.environ.get(CACHE_ENV, "")
    if setting.lower() == "off":
        return None
    if setting:
        folder = Path(setting)
    else:
        folder = (
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayesfm" / "jax"
        )
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_SECONDS)
    keep_programs_in(folder / _PROGRAMS)
    return folder
