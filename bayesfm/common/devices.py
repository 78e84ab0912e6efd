"""Batch shapes for stars: padding to fixed sizes, and spreading over the local devices."""

import functools
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "pad_leading",
    "bucket_size",
    "shard_stars",
    "in_star_blocks",
    "full_precision",
    "default_workers",
    "usable_cores",
]


def pad_leading(arrays, size):
    """Pad every array of a pytree along its leading axis to ``size`` by repeating its last row."""

    def pad(a):
        a = np.asarray(a)
        missing = size - len(a)
        return a if missing <= 0 else np.concatenate([a, np.repeat(a[-1:], missing, axis=0)])

    return jax.tree_util.tree_map(pad, arrays)


def bucket_size(n: int) -> int:
    """The power of two >= n: batches padded to it compile once per bucket, not per size."""
    return 1 << max(0, int(n - 1).bit_length())


def shard_stars(arrays):
    """Place a pytree of arrays with a leading star axis across all local devices.

    With one device nothing changes. With several, the star axis is padded (repeating the
    last star) to a multiple of the device count and split over the devices, so a jitted
    function of these arrays runs on all of them; callers drop the padded rows.
    """
    devices = jax.local_devices()
    if len(devices) == 1:
        return arrays
    n = len(jax.tree_util.tree_leaves(arrays)[0])
    arrays = pad_leading(arrays, n + (-n % len(devices)))
    mesh = Mesh(np.array(devices), ("stars",))

    def place(a):
        spec = PartitionSpec("stars", *([None] * (np.ndim(a) - 1)))
        return jax.device_put(a, NamedSharding(mesh, spec))

    return jax.tree_util.tree_map(place, arrays)


def in_star_blocks(program, arrays, n, size, shared=()):
    """``program``'s outputs (numpy) for the n stars of ``arrays`` (a pytree, each leaf with a
    leading star axis), run on blocks of ``size`` stars spread over the local devices, the
    last block padded: one compiled program serves any number of stars. ``shared``: further
    arguments, the same for every star."""
    parts = []
    for first in range(0, n, size):
        rows = slice(first, first + size)
        block = jax.tree_util.tree_map(lambda a, rows=rows: np.asarray(a)[rows], arrays)
        kept = min(size, n - first)
        out = program(*shard_stars(pad_leading(block, size)), *shared)
        parts.append(jax.tree_util.tree_map(lambda a, kept=kept: np.asarray(a)[:kept], out))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)


def full_precision(fn):
    """Run ``fn`` with float32 matmuls at full precision: the TF32 matmuls GPUs use by
    default break NUTS's convergence. Set per call, never for the whole process."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


def default_workers(most: int = 8) -> int:
    """Catalogue chunks to fit at once: on a CPU one per core this process may use, up to
    ``most`` (each worker process holds about 1.5 GB), on an accelerator one."""
    if jax.default_backend() != "cpu":
        return 1
    cores = usable_cores()
    count = len(cores) if cores is not None else os.cpu_count()
    return max(1, min(most, count or 1))


def usable_cores() -> list | None:
    """The CPU cores this process may use, in order, where the system says (Linux); None
    elsewhere."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
