"""A persistent cache of compiled programs: a command's second run skips XLA's compilation.

A catalogue run compiles its mode search, importance sampler, NUTS fallback and checks once per
batch shape, about a minute on a 2-core CPU (docs/performance.md); jax can keep the compiled
programs on disk. The command line turns this on (``enable_compilation_cache``); the library
leaves jax's settings alone. The folder is ``$BAYESFM_COMPILATION_CACHE`` (``off`` disables it),
by default ``$XDG_CACHE_HOME/bayesfm/jax`` (``~/.cache/bayesfm/jax``); a folder already set
through jax's own ``JAX_COMPILATION_CACHE_DIR`` is kept. Like any compilation cache it runs
what it holds: keep it where only you can write.
"""

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "enable_compilation_cache"]

CACHE_ENV = "BAYESFM_COMPILATION_CACHE"
_MIN_COMPILE_SECONDS = 0.0  # every program is stored: many small ones added up to seconds


def enable_compilation_cache() -> Path | None:
    """Point jax's persistent compilation cache at bayesfm's folder (before the first
    compilation); the folder in use, or None where disabled."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
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
    return folder
