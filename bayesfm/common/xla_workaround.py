"""Keep XLA's CPU runtime from wedging.

With XLA's multi-threaded Eigen pool on the CPU, a jitted computation now and then never
completes: every thread waits on a futex at 0% CPU. Seen here in the importance sampler's
draws (two runs of thousands of stars each stopped, within 20 minutes, at the same call)
and reported by others on vmap-heavy graphs; ``--xla_cpu_multi_thread_eigen=false`` avoids
it. It only changes how one CPU operation is split over threads; it must be set before
jax starts its CPU backend, so bayesfm sets it on import unless the user chose otherwise.
"""

import os

__all__ = ["single_threaded_cpu_eigen", "EIGEN_FLAG"]

EIGEN_FLAG = "--xla_cpu_multi_thread_eigen"


def single_threaded_cpu_eigen() -> None:
    """Add ``--xla_cpu_multi_thread_eigen=false`` to ``XLA_FLAGS`` unless it names the flag."""
    flags = os.environ.get("XLA_FLAGS", "")
    if EIGEN_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {EIGEN_FLAG}=false".strip()
