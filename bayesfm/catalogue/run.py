"""Posteriors for whole catalogues: chunked, written as they go, resumable, optionally on Dask.

A run splits the stars into chunks of ``chunk_size`` in table order. Each chunk goes
through importance sampling from the amortized prediction; stars whose Pareto k-hat or
effective sample size fail go on to batched NUTS (``method="auto"``; ``"importance"`` or
``"nuts"`` force one path). A finished chunk is written atomically to ``chunks/`` (summary
CSV, and optionally the draws as .npz) and a rerun skips it, so an interrupted run resumes
without losing or repeating a star. ``catalogue.csv`` / ``catalogue.fits`` join the chunks
at the end. On a CPU a chunk whose fit stops using the CPU for minutes (an XLA stall) ends
the process with a message (``bayesfm.common.stall_watch``): the rerun resumes.

With ``workers`` above one, that many chunks are fitted at once in worker processes
(``bayesfm.catalogue.workers``); a chunk's numbers do not depend on where it was fitted.

With a ``dask.distributed.Client`` each chunk is one task; workers build the emulator
from the model file once, and the client writes what they return.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayesfm.catalogue.chunk import fit_chunk
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.store import check_run_manifest, chunk_path, join_chunks, write_chunk
from bayesfm.catalogue.workers import fit_in_processes, worker_setup
from bayesfm.common.errors import DataError
from bayesfm.common.stall_watch import CHUNK_STALL_SECONDS, watch_on_cpu
from bayesfm.infer.setup import StarInference
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["run_catalogue"]


def run_catalogue(
    stars: StarTokens,
    out_dir,
    config: CatalogueConfig = CatalogueConfig(),
    setup: StarInference | None = None,
    model_path=None,
    *,
    client=None,
    workers: int = 1,
    progress: bool = True,
    anchors=None,
) -> pd.DataFrame:
    """Posteriors for every star of ``stars``, written under ``out_dir``; resumes.

    Args:
        stars: The catalogue (its row order fixes the chunks).
        out_dir: Output folder: run.json, chunks/, catalogue.csv and catalogue.fits.
        config: Methods, chunking and sampler settings.
        setup: The inference setup (default: the model at ``model_path`` with its shipped
            prior and noise model). Dask runs rebuild it on the workers from ``model_path``.
        model_path: Model .safetensors (default: the shipped one).
        client: A ``dask.distributed.Client``: one task per chunk on its workers.
        workers: Chunks fitted at once, in as many worker processes (without ``client``),
            e.g. the number of CPU cores (``bayesfm.common.devices.default_workers``).
            They build the default setup of ``model_path`` and refuse another ``setup``.
        progress: Show a progress bar in stars/s.
        anchors: Physical labels [len(stars), 5] at which each star's emulator sigma is
            taken (default: its amortized prediction); e.g. the truth of simulated stars.

    Returns:
        The catalogue, one row per star in input order.
    """
    if workers < 1:
        raise DataError(f"workers must be at least 1, not {workers}")
    out = Path(out_dir)
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    if setup is None:
        setup = StarInference.default(model_path)
    check_run_manifest(out / "run.json", stars, config, setup, model_path, anchors)
    n_chunks = -(-len(stars) // config.chunk_size)
    todo = [i for i in range(n_chunks) if not chunk_path(chunk_dir, i).exists()]
    done_stars = len(stars) - sum(len(_chunk_rows(stars, config, i)) for i in todo)
    bar = tqdm(
        total=len(stars), initial=done_stars, unit="star", desc="catalogue", disable=not progress
    )
    if client is None:
        chunks = _fitted_chunks(setup, stars, config, todo, anchors, workers, model_path, out)
        for i, result in chunks:
            write_chunk(chunk_dir, i, result)
            bar.update(len(result.table))
    else:
        _run_on_dask(client, model_path, stars, config, todo, anchors, chunk_dir, bar)
    bar.close()
    return join_chunks(out, chunk_dir, n_chunks)


def _stall_watch(out: Path):
    """On a CPU, a watchdog that ends a chunk's fit when it stalls."""
    hint = f"The finished chunks are saved in {out}; run the same command again to resume."
    return watch_on_cpu(CHUNK_STALL_SECONDS, "a catalogue chunk", hint)


def _fitted_chunks(setup, stars, config, todo, anchors, workers, model_path, out: Path):
    """(index, result) of each chunk of ``todo``, as they finish."""

    def chunk_of(i):
        rows = _chunk_rows(stars, config, i)
        return stars.take(rows), _rows_of(anchors, rows)

    if min(workers, len(todo)) > 1:  # one chunk left is fitted here: no workers to start
        fingerprint = setup.fingerprint()
        yield from fit_in_processes(todo, chunk_of, model_path, fingerprint, config, workers)
        return
    watch = _stall_watch(out)
    for i in todo:
        chunk_stars, chunk_anchors = chunk_of(i)
        with watch:
            result = fit_chunk(setup, chunk_stars, config, i, chunk_anchors)
        yield i, result


def _run_on_dask(client, model_path, stars, config, todo, anchors, chunk_dir: Path, bar):
    """One task per chunk on the client's workers; the client writes what they return."""
    from dask.distributed import as_completed

    futures = {}
    for i in todo:
        rows = _chunk_rows(stars, config, i)
        args = (model_path, stars.take(rows), config, i, _rows_of(anchors, rows))
        futures[client.submit(_fit_chunk_on_worker, *args, pure=False)] = i
    for future in as_completed(futures):
        result = future.result()
        write_chunk(chunk_dir, futures[future], result)
        bar.update(len(result.table))


def _fit_chunk_on_worker(model_path, stars, config, index, anchors):
    return fit_chunk(worker_setup(model_path), stars, config, index, anchors)


def _rows_of(anchors, rows):
    return None if anchors is None else np.asarray(anchors)[rows]


def _chunk_rows(stars, config, index):
    return np.arange(index * config.chunk_size, min(len(stars), (index + 1) * config.chunk_size))
