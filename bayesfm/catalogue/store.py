"""A catalogue's folder: its manifest, chunk files written atomically, and the joined tables.

``chunks/chunk_<index>.csv`` exists only once its chunk is complete (its draws, if saved,
and its cost account are written first), so a rerun skips exactly the finished chunks.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bayesfm.catalogue.chunk import ChunkResult
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_path
from bayesfm.common.jsonio import save_json
from bayesfm.common.manifest import check_manifest

__all__ = [
    "chunk_path",
    "write_chunk",
    "join_chunks",
    "check_run_manifest",
    "load_draws",
    "load_costs",
]

_FORMAT_VERSION = 1


def chunk_path(chunk_dir: Path, index: int) -> Path:
    return chunk_dir / f"chunk_{index:06d}.csv"


def write_chunk(chunk_dir: Path, index: int, result: ChunkResult):
    """Draws and cost first, then the summary CSV, each via a temporary file and an atomic
    rename: the CSV's existence means the chunk is complete."""
    path = chunk_path(chunk_dir, index)
    if result.cost:
        save_json(path.with_name(path.stem + "_cost.json"), result.cost)
    if result.draws is not None:
        draws_path = path.with_name(path.stem + "_draws.npz")
        with atomic_path(draws_path, keep_suffix=True) as tmp:
            np.savez(tmp, source_id=result.table["source_id"].to_numpy(), draws=result.draws)
    with atomic_path(path) as tmp:
        result.table.to_csv(tmp, index=False)


def join_chunks(out: Path, chunk_dir: Path, n_chunks: int) -> pd.DataFrame:
    from astropy.table import Table

    table = pd.concat(
        [
            pd.read_csv(chunk_path(chunk_dir, i), keep_default_na=False, na_values=[""])
            for i in range(n_chunks)
        ],
        ignore_index=True,
    )
    table["flags"] = table["flags"].fillna("")
    table["path"] = table["path"].fillna("")
    with atomic_path(out / "catalogue.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "catalogue.fits", keep_suffix=True) as tmp:
        Table.from_pandas(table).write(tmp, overwrite=True)
    return table


def check_run_manifest(path: Path, stars, config: CatalogueConfig, setup, model_path, anchors):
    """Write run.json, or check that a resumed run has the same input, model and settings."""
    manifest = {
        "format_version": _FORMAT_VERSION,
        "n_stars": len(stars),
        "input_sha256": stars.content_hash(),
        "model": str(model_path) if model_path is not None else "shipped default",
        "weights_sha256": setup.model.weights_sha256,
        "model_prior_noise_sha256": setup.fingerprint(),
        "config": config.to_dict(),
    }
    if anchors is not None:
        digest = hashlib.sha256(np.ascontiguousarray(anchors, np.float64).tobytes())
        manifest["anchors_sha256"] = digest.hexdigest()
    check_manifest(path, manifest, "catalogue")


def load_draws(out_dir) -> np.ndarray:
    """Equal-weight draws [n, S, 5] (physical, star order) of a run with ``save_draws``."""
    paths = sorted((Path(out_dir) / "chunks").glob("chunk_*_draws.npz"))
    if not paths:
        raise DataError(f"{out_dir} has no saved draws: run the catalogue with save_draws=True")
    return np.concatenate([np.load(p, allow_pickle=False)["draws"] for p in paths])


def load_costs(out_dir) -> list[dict]:
    """The cost accounts of a run's chunks (``ChunkResult.cost``), in chunk order."""
    paths = sorted((Path(out_dir) / "chunks").glob("chunk_*_cost.json"))
    return [json.loads(p.read_text()) for p in paths]
