"""The entry point: parse, run the command, turn a DataError into one line and exit code 2."""

import sys

from bayesfm.cli.parser import build_parser
from bayesfm.common.compile_cache import enable_compilation_cache
from bayesfm.common.errors import DataError, MissingDataPackageError

__all__ = ["main"]


def _use_cpu_cores_as_devices(n_chains: int) -> None:
    """On a CPU, expose the cores as devices so that chains run in parallel (before jax starts)."""
    import os

    import numpyro

    if "cuda" not in os.environ.get("JAX_PLATFORMS", "") and not _has_gpu_jaxlib():
        numpyro.set_host_device_count(max(1, min(n_chains, os.cpu_count() or 1)))


def _has_gpu_jaxlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax_cuda12_plugin") is not None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("fit", "demo"):
        _use_cpu_cores_as_devices(args.chains)
    enable_compilation_cache()
    try:
        return args.run(args) or 0
    except (DataError, MissingDataPackageError) as err:
        if args.debug:
            raise
        print(f"bayesfm {args.command}: error: {err}", file=sys.stderr)
        return 2
