"""Posteriors for whole catalogues: chunked, written as they go, resumable, optionally on Dask.

A run splits the stars into chunks of ``chunk_size`` in table order. Each chunk goes
through importance sampling from the amortized prediction; stars whose Pareto k-hat or
effective sample size fail go on to batched NUTS (``method="auto"``; ``"importance"`` or
``"nuts"`` force one path). A finished chunk is written atomically to ``chunks/`` (summary
CSV, and optionally the draws as .npz) and a rerun skips it, so an interrupted run resumes
without losing or repeating a star. ``catalogue.csv`` / ``catalogue.fits`` join the chunks
at the end.

With a ``dask.distributed.Client`` each chunk is one task; workers build the emulator
from the model file once, and the client writes what they return.
"""

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayesfm.common.devices import bucket_size, pad_leading
from bayesfm.common.errors import DataError
from bayesfm.common.manifest import check_manifest
from bayesfm.infer.batched_nuts import BatchedNutsConfig, chain_diagnostics, run_batched_nuts
from bayesfm.infer.diagnostics import ConvergenceCriteria
from bayesfm.infer.importance import ImportanceConfig, laplace_proposal, run_importance
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.infer.trust import TrustCriteria, assess, flag_notes
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["METHODS", "CatalogueConfig", "fit_chunk", "run_catalogue", "load_draws"]

METHODS = ("auto", "importance", "nuts")
QUANTILES = {"q02_5": 0.025, "q16": 0.16, "median": 0.5, "q84": 0.84, "q97_5": 0.975}
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CatalogueConfig:
    """Everything that decides a catalogue's numbers (saved as ``run.json``)."""

    method: str = "auto"
    chunk_size: int = 64
    seed: int = 0
    save_draws: bool = False
    nuts: BatchedNutsConfig = BatchedNutsConfig()
    importance: ImportanceConfig = ImportanceConfig()
    convergence: ConvergenceCriteria = ConvergenceCriteria(min_ess_bulk=200.0)
    trust: TrustCriteria = TrustCriteria()

    def __post_init__(self):
        if self.method not in METHODS:
            raise DataError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        if self.chunk_size < 1:
            raise DataError(f"chunk_size must be at least 1, not {self.chunk_size}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["convergence"] = self.convergence._asdict()
        out["trust"] = self.trust._asdict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CatalogueConfig":
        """Settings from a dict like ``to_dict``'s; missing keys keep their defaults."""
        known = {
            "method",
            "chunk_size",
            "seed",
            "save_draws",
            "nuts",
            "importance",
            "convergence",
            "trust",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"unknown catalogue setting(s) {unknown}; known: {sorted(known)}")
        data = dict(data)
        try:
            data["nuts"] = BatchedNutsConfig(**data.get("nuts", {}))
            data["importance"] = ImportanceConfig(**data.get("importance", {}))
            data["convergence"] = ConvergenceCriteria(
                **{**cls.convergence._asdict(), **data.get("convergence", {})}
            )
            data["trust"] = TrustCriteria(**data.get("trust", {}))
        except TypeError as err:
            raise DataError(f"bad catalogue setting: {err}") from err
        return cls(**data)


@dataclass
class ChunkResult:
    """One chunk's summary rows and (optionally) equal-weight draws [n, S, 5] physical."""

    table: pd.DataFrame
    draws: np.ndarray | None = field(default=None)


def fit_chunk(
    setup: StarInference, stars: StarTokens, config: CatalogueConfig, index: int, anchors=None
):
    """Posteriors of the stars of chunk ``index`` (its randomness depends on seed and index).

    ``anchors``: labels [n, 5] at which to take the emulator sigma (see ``stars_data``).
    """
    start = time.perf_counter()
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), index)
    is_key, nuts_key = jax.random.split(key)
    n = len(stars)
    table = _empty_table(stars)
    draws = np.full((n, _draws_per_star(config), len(LABEL_INPUTS)), np.nan, np.float32)
    data, usable, problems, mean, sigma = prepare_stars(setup, stars, anchors)
    for row, reason in problems.items():
        table.loc[row, ["path", "flags"]] = ["skipped", reason]
    if not usable:
        table["seconds"] = (time.perf_counter() - start) / n
        return ChunkResult(table, draws if config.save_draws else None)

    z_mean = setup.scaling.normalise(mean)
    z_sigma = sigma / setup.scaling.scale
    size = bucket_size(len(usable))
    padded = pad_leading((data, z_mean, z_sigma), size)
    if config.method == "nuts":
        loc, chol = (a[: len(usable)] for a in laplace_proposal(setup, *padded, config.importance))
        to_nuts = np.ones(len(usable), bool)
    else:
        result = run_importance(setup, *padded, is_key, config.importance)
        z, khat, ess, accepted, loc, chol = (a[: len(usable)] for a in result)
        rows = np.asarray(usable)
        table.loc[rows, "khat"] = khat
        table.loc[rows, "importance_ess"] = ess
        to_nuts = ~accepted if config.method == "auto" else np.zeros_like(accepted)
        done = rows[~to_nuts]
        table.loc[done, "path"] = "importance"
        table.loc[done, "ok"] = accepted[~to_nuts]
        table.loc[rows[~accepted], "flags"] = "importance weights unreliable (k-hat or ESS)"
        draws[done, : config.importance.num_keep] = _physical(setup, z[~to_nuts])

    if to_nuts.any():
        picked = np.flatnonzero(to_nuts)
        rows = np.asarray(usable)[picked]
        subset = jax.tree_util.tree_map(lambda a: a[picked], data)
        chains = run_batched_nuts(setup, subset, loc[picked], chol[picked], nuts_key, config.nuts)
        _record_nuts(table, rows, chains, config.convergence)
        per_star = chains.z.reshape(len(picked), -1, len(LABEL_INPUTS))
        draws[rows, : per_star.shape[1]] = _physical(setup, per_star)

    _summarise_draws(table, draws)
    _assess_trust(setup, table, data, usable, draws, config.trust)
    table["seconds"] = (time.perf_counter() - start) / n  # the chunk's wall time, shared
    return ChunkResult(table, draws if config.save_draws else None)


def _assess_trust(setup, table, data, usable, draws, criteria: TrustCriteria):
    """The trust columns of the usable stars (see ``bayesfm.trust``)."""
    rows = np.asarray(usable)
    median = table.loc[rows, [f"{n}_median" for n in LABEL_INPUTS]].to_numpy(np.float32)
    fitted = np.isfinite(median).all(axis=1)
    if not fitted.any():
        return
    rows, subset = rows[fitted], jax.tree_util.tree_map(lambda a: a[fitted], data)
    sampler_ok = table.loc[rows, "ok"].to_numpy(bool)
    columns = assess(setup, subset, median[fitted], draws[rows], sampler_ok, criteria)
    for name in ("fit_chi2", "fit_dof", "fit_p", "outside_domain_fraction", "trusted"):
        table.loc[rows, name] = columns[name]
    for row, fit_ok, in_domain in zip(rows, columns["fit_ok"], columns["in_domain"], strict=True):
        notes = [table.at[row, "flags"]] if table.at[row, "flags"] else []
        table.at[row, "flags"] = "; ".join(notes + flag_notes(fit_ok, in_domain))


def _draws_per_star(config: CatalogueConfig) -> int:
    nuts = config.nuts.num_chains * config.nuts.num_samples
    return max(config.importance.num_keep, nuts)


def _physical(setup, z):
    return setup.scaling.physical(z).astype(np.float32)


def _empty_table(stars: StarTokens) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "source_id": stars.source_id.astype(np.int64),
            "path": "",
            "ok": False,
            "flags": "",
            "khat": np.nan,
            "importance_ess": np.nan,
            "max_rhat": np.nan,
            "min_ess_bulk": np.nan,
            "divergences": -1,
            "depth_bound_fraction": np.nan,
            "fit_chi2": np.nan,
            "fit_dof": -1,
            "fit_p": np.nan,
            "outside_domain_fraction": np.nan,
            "trusted": False,
        }
    )
    for name in LABEL_INPUTS:
        if name in stars.names:  # reference labels (e.g. APOGEE) travel with the results
            values, errors = stars.column(name)
            table[f"{name}_ref"] = values
            table[f"{name}_ref_err"] = errors
    return table


def _record_nuts(table, rows, chains, criteria: ConvergenceCriteria):
    diagnostics = chain_diagnostics(chains)
    for name, values in diagnostics.items():
        table.loc[rows, name] = values
    converged = (
        (diagnostics["max_rhat"] <= criteria.max_rhat)
        & (diagnostics["min_ess_bulk"] >= criteria.min_ess_bulk)
        & (diagnostics["divergences"] <= criteria.max_divergences)
    )
    table.loc[rows, "path"] = "nuts"
    table.loc[rows, "ok"] = converged
    for row, good, bound in zip(
        rows, converged, diagnostics["depth_bound_fraction"] > 0.05, strict=True
    ):
        notes = [table.at[row, "flags"]] if table.at[row, "flags"] else []
        notes += [] if good else ["NUTS not converged (R-hat, ESS or divergences)"]
        notes += ["NUTS trajectories hit the tree-depth bound"] if bound else []
        table.at[row, "flags"] = "; ".join(notes)


def _summarise_draws(table, draws):
    finite = np.isfinite(draws[..., 0])
    for i, name in enumerate(LABEL_INPUTS):
        x = np.where(finite, draws[..., i], np.nan)
        with np.errstate(all="ignore"):
            for column, q in QUANTILES.items():
                table[f"{name}_{column}"] = _nan_rows(partial(np.nanquantile, q=q), x)
            table[f"{name}_mean"] = _nan_rows(np.nanmean, x)
            table[f"{name}_sd"] = _nan_rows(np.nanstd, x)


def _nan_rows(reduce, x):
    out = np.full(len(x), np.nan)
    rows = np.isfinite(x).any(axis=1)
    if rows.any():
        out[rows] = reduce(x[rows], axis=1)
    return out


def run_catalogue(
    stars: StarTokens,
    out_dir,
    config: CatalogueConfig = CatalogueConfig(),
    setup: StarInference | None = None,
    model_path=None,
    *,
    client=None,
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
        progress: Show a progress bar in stars/s.
        anchors: Physical labels [len(stars), 5] at which each star's emulator sigma is
            taken (default: its amortized prediction); e.g. the truth of simulated stars.

    Returns:
        The catalogue, one row per star in input order.
    """
    out = Path(out_dir)
    chunk_dir = out / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    if setup is None:
        setup = StarInference.default(model_path)
    _check_manifest(out / "run.json", stars, config, setup, model_path, anchors)
    n_chunks = -(-len(stars) // config.chunk_size)
    todo = [i for i in range(n_chunks) if not _chunk_path(chunk_dir, i).exists()]
    done_stars = len(stars) - sum(len(_chunk_rows(stars, config, i)) for i in todo)
    bar = tqdm(
        total=len(stars), initial=done_stars, unit="star", desc="catalogue", disable=not progress
    )
    if client is None:
        for i in todo:
            rows = _chunk_rows(stars, config, i)
            result = fit_chunk(setup, stars.take(rows), config, i, _rows_of(anchors, rows))
            _write_chunk(chunk_dir, i, result)
            bar.update(len(rows))
    else:
        from dask.distributed import as_completed

        futures = {
            client.submit(
                _fit_chunk_on_worker,
                model_path,
                stars.take(_chunk_rows(stars, config, i)),
                config,
                i,
                _rows_of(anchors, _chunk_rows(stars, config, i)),
                pure=False,
            ): i
            for i in todo
        }
        for future in as_completed(futures):
            result = future.result()
            _write_chunk(chunk_dir, futures[future], result)
            bar.update(len(result.table))
    bar.close()
    return _join_chunks(out, chunk_dir, n_chunks)


def load_draws(out_dir) -> np.ndarray:
    """Equal-weight draws [n, S, 5] (physical, star order) of a run with ``save_draws``."""
    paths = sorted((Path(out_dir) / "chunks").glob("chunk_*_draws.npz"))
    if not paths:
        raise DataError(f"{out_dir} has no saved draws: run the catalogue with save_draws=True")
    return np.concatenate([np.load(p, allow_pickle=False)["draws"] for p in paths])


@lru_cache(maxsize=2)
def _worker_setup(model_path):
    return StarInference.default(model_path)


def _fit_chunk_on_worker(model_path, stars, config, index, anchors):
    return fit_chunk(_worker_setup(model_path), stars, config, index, anchors)


def _rows_of(anchors, rows):
    return None if anchors is None else np.asarray(anchors)[rows]


def _chunk_rows(stars, config, index):
    return np.arange(index * config.chunk_size, min(len(stars), (index + 1) * config.chunk_size))


def _chunk_path(chunk_dir: Path, index: int) -> Path:
    return chunk_dir / f"chunk_{index:06d}.csv"


def _write_chunk(chunk_dir: Path, index: int, result: ChunkResult):
    """Draws first, then the summary CSV, each via a temporary file and an atomic rename:
    the CSV's existence means the chunk is complete."""
    path = _chunk_path(chunk_dir, index)
    if result.draws is not None:
        draws_path = path.with_name(path.stem + "_draws.npz")
        tmp = draws_path.with_suffix(".tmp.npz")
        np.savez(tmp, source_id=result.table["source_id"].to_numpy(), draws=result.draws)
        os.replace(tmp, draws_path)
    tmp = path.with_suffix(".csv.tmp")
    result.table.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _join_chunks(out: Path, chunk_dir: Path, n_chunks: int) -> pd.DataFrame:
    from astropy.table import Table

    table = pd.concat(
        [
            pd.read_csv(_chunk_path(chunk_dir, i), keep_default_na=False, na_values=[""])
            for i in range(n_chunks)
        ],
        ignore_index=True,
    )
    table["flags"] = table["flags"].fillna("")
    table["path"] = table["path"].fillna("")
    tmp = out / "catalogue.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / "catalogue.csv")
    fits_tmp = out / "catalogue.tmp.fits"
    Table.from_pandas(table).write(fits_tmp, overwrite=True)
    os.replace(fits_tmp, out / "catalogue.fits")
    return table


def _check_manifest(path: Path, stars, config: CatalogueConfig, setup, model_path, anchors):
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
