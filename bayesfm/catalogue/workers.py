"""A catalogue's chunks fitted in worker processes on this machine, several at once.

XLA runs a chunk's small batched programs on one CPU core, so one process leaves the other
cores idle; ``workers`` processes, each with its own XLA runtime, fit that many chunks at
once, with the same numbers as one process. Each keeps to its own share of the cores
(``core_shares``): left to roam, the workers' XLA threads waited on each other, and on two
cores a NUTS star took 20-32 s beside a busy worker instead of 14-15 s (docs/performance.md).
Each builds the inference setup from the model file once and refuses to fit if it is not
the run's (same fingerprint), and keeps its compiled programs in the parent's compilation
cache. A worker whose fit stalls (``bayesfm.common.stall_watch``) ends itself; the chunks
not yet finished then go to fresh workers, a few times over, so that an unattended run
keeps going.
"""

import functools
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import jax

from bayesfm.catalogue.chunk import fit_chunk
from bayesfm.common.devices import usable_cores
from bayesfm.common.errors import DataError
from bayesfm.common.stall_watch import CHUNK_STALL_SECONDS, watch_on_cpu
from bayesfm.infer.setup import StarInference

__all__ = ["fit_in_processes", "core_shares", "worker_setup"]

_RESTARTS = 3  # fresh pools after a worker ended (a stall) before the run gives up


def fit_in_processes(todo, chunk_of, model_path, fingerprint: str, config, workers: int):
    """(index, ``ChunkResult``) of each chunk index of ``todo``, as they finish.

    Args:
        todo: Chunk indices to fit.
        chunk_of: index -> (stars, anchors or None) of that chunk.
        model_path: The model file the workers load (None: the shipped one).
        fingerprint: The run's ``StarInference.fingerprint()``; workers check theirs.
        config: The ``CatalogueConfig``.
        workers: Processes, i.e. chunks in flight.
    """
    left = list(todo)
    for restart in range(_RESTARTS + 1):
        try:
            pool_results = _fit_in_pool(
                list(left), chunk_of, model_path, fingerprint, config, workers
            )
            for index, result in pool_results:
                left.remove(index)
                yield index, result
            return
        except BrokenProcessPool as err:
            if restart == _RESTARTS:
                raise DataError(
                    f"catalogue workers ended {_RESTARTS + 1} times (stalls or crashes, e.g. "
                    "out of memory); the finished chunks are saved: rerun to resume, with "
                    "fewer --workers if memory is short"
                ) from err
            print(
                f"bayesfm: a catalogue worker ended (a stall or a crash); its {len(left)} "
                "unfinished chunks go to fresh workers",
                file=sys.stderr,
                flush=True,
            )


def _fit_in_pool(todo, chunk_of, model_path, fingerprint, config, workers):
    """One pool's results; at most two chunks per worker are handed over at a time."""
    cache = jax.config.jax_compilation_cache_dir or None
    context = multiprocessing.get_context("spawn")  # jax's threads do not survive fork
    started = context.Value("i", 0)  # workers started so far: each takes the next core share
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(cache, core_shares(workers), started),
    )
    queue, in_flight = iter(todo), {}

    def hand_over():
        index = next(queue, None)
        if index is not None:
            stars, anchors = chunk_of(index)
            args = (model_path, fingerprint, stars, config, index, anchors)
            in_flight[pool.submit(_fit_in_worker, *args)] = index

    try:
        for _ in range(2 * workers):
            hand_over()
        while in_flight:
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                index = in_flight.pop(future)
                result = future.result()
                hand_over()
                yield index, result
    finally:  # an error or an interrupt: chunks not started are dropped, not fitted
        pool.shutdown(wait=True, cancel_futures=True)


def core_shares(workers: int) -> list | None:
    """The CPU cores each of ``workers`` processes keeps to: those this process may use,
    dealt out in turn (with Linux's usual numbering, and workers dividing the physical
    cores, each worker gets both hyperthreads of its cores); None where they are fewer than
    the workers or the system cannot pin processes."""
    cores = usable_cores()
    if cores is None or len(cores) < workers:
        return None
    return [cores[i::workers] for i in range(workers)]


def _start_worker(cache_dir, shares, started):
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    if shares is not None:
        with started.get_lock():
            index, started.value = started.value, started.value + 1
        try:
            os.sched_setaffinity(0, shares[index % len(shares)])
        except OSError:  # a sandbox that refuses: the worker runs unpinned, only slower
            pass
    if cache_dir is not None:
        from bayesfm.common.compile_cache import CACHE_ENV, enable_compilation_cache

        os.environ[CACHE_ENV] = cache_dir
        enable_compilation_cache()


def _end_with_parent(parent: int):
    """End this worker once its parent is gone (killed: SIGKILL leaves it no time to stop
    its workers, which would otherwise wait for chunks for ever)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


@functools.lru_cache(maxsize=2)
def worker_setup(model_path) -> StarInference:
    """The default setup of ``model_path``, built once per worker process."""
    return StarInference.default(model_path)


def _fit_in_worker(model_path, fingerprint, stars, config, index, anchors):
    setup = worker_setup(model_path)
    if _fingerprint(setup) != fingerprint:
        raise DataError(
            "catalogue workers load the model's default prior and noise model, and this run's "
            "setup is another: run it with workers=1"
        )
    hint = "The worker ends; its chunk goes to a fresh one."
    with watch_on_cpu(CHUNK_STALL_SECONDS, "a catalogue chunk", hint):
        return fit_chunk(setup, stars, config, index, anchors)


@functools.lru_cache(maxsize=2)
def _fingerprint(setup) -> str:
    return setup.fingerprint()
