"""Fit a few stars and write everything a person looks at: netCDF, summary CSV, plots.

Resumable and safe to kill. Each star's summary rows go to ``stars/<source_id>.csv`` and
then its ``<source_id>.nc``, each written to a temporary file and renamed into place; the
netCDF is the commit point. ``summary.csv`` is rebuilt (atomically) from the finished stars
after each one and at the start of a run, so it never holds a partial or duplicated star.
A rerun skips stars whose netCDF reads back, redoes any whose file is unreadable, and is
refused (naming the setting) if its input, model, method or sampler settings differ
(``run.json``). A star that cannot be fitted is recorded in ``skipped.csv`` and the run
goes on.
"""

import csv
import io
from pathlib import Path
from typing import NamedTuple

import arviz as az
import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_path, atomic_write_text
from bayesfm.common.jsonio import to_json
from bayesfm.common.manifest import check_manifest
from bayesfm.infer.diagnostics import summarise
from bayesfm.infer.nuts import NutsRunner
from bayesfm.infer.settings import ONE_STAR_NUTS, NutsConfig, SviConfig
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.infer.svi import GUIDES, run_svi
from bayesfm.infer.trust import TrustCriteria, assess, flag_notes
from bayesfm.plots import plot_corner, plot_spectrum, plot_trace
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["METHODS", "FitReport", "fit_stars", "prepare_output_dir", "reference_inside_95"]

METHODS = ("nuts", *(f"svi-{g}" for g in GUIDES))
_HEADER = (
    "source_id,method,label,median,q16,q84,mean,sd,r_hat,ess_bulk,reference,"
    "divergences,converged,sampling_seconds,fit_p,outside_domain_fraction,trusted\n"
)


class FitReport(NamedTuple):
    """What one call of ``fit_stars`` did.

    Attributes:
        fitted: (source_id, summary table, flags) of each star fitted in this call.
        skipped: (source_id, reason) of each star that could not be fitted.
        already_done: Source ids finished by an earlier run.
    """

    fitted: list
    skipped: list
    already_done: list


def prepare_output_dir(path) -> Path:
    """Create ``path`` if needed and check that files can be written there, before any fit."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file, not a folder; choose a folder name")
    try:
        (out / "stars").mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise DataError(
            f"cannot write to --out {out} ({err.strerror}); choose another folder"
        ) from err
    return out


def fit_stars(
    setup: StarInference,
    stars: StarTokens,
    rows,
    out_dir,
    method="nuts",
    seed=0,
    nuts: NutsConfig = ONE_STAR_NUTS,
    max_samples=None,
    plots=True,
    progress=True,
    model_name="shipped default",
) -> FitReport:
    """Fit stars ``rows`` and write ``<source_id>.nc``, ``<source_id>_*.png`` and ``summary.csv``."""
    out = prepare_output_dir(out_dir)
    manifest = {
        "format_version": 1,
        "input_sha256": stars.content_hash(),
        "model": model_name,
        "weights_sha256": setup.model.weights_sha256,
        "model_prior_noise_sha256": setup.fingerprint(),
        "method": method,
        "seed": seed,
        "nuts": {**to_json(nuts), "max_samples": max_samples} if method == "nuts" else None,
    }
    check_manifest(out / "run.json", manifest, "fit")
    _rebuild_summary(out)
    runner = NutsRunner(setup, nuts, max_samples) if method == "nuts" else None
    report = FitReport([], [], [])
    for row in tqdm(list(rows), desc=f"fitting ({method})", disable=not progress, unit="star"):
        source = int(stars.source_id[row])
        if _finished(out, source):
            report.already_done.append(source)
            continue
        key = jax.random.PRNGKey(seed + row)
        try:
            if runner is not None:
                idata = runner.run(stars, row, key)
            else:
                idata = run_svi(
                    setup, stars, row, key, SviConfig(guide=method.removeprefix("svi-"))
                )
        except (DataError, RuntimeError) as err:  # numpyro: no valid initial parameters
            report.skipped.append((source, str(err).splitlines()[0]))
            continue
        table, flags = _checked_summary(setup, stars, row, idata)
        _write_star(out, source, method, idata, table, flags, plots)
        report.fitted.append((source, table, flags))
    atomic_write_text(out / "skipped.csv", _csv_text(["source_id", "reason"], report.skipped))
    return report


def _checked_summary(setup, stars, row, idata):
    """(label table with the star's reference labels, flags with its trust verdict)."""
    table, flags = summarise(idata)
    flags |= _trust(setup, stars, row, idata, flags["converged"])
    idata.posterior.attrs.update(
        {k: _attr(flags[k]) for k in ("fit_p", "outside_domain_fraction", "trusted")}
    )
    known = [n for n in table.index if n in stars.names]
    columns = stars.index(known)
    table["reference"] = pd.Series(stars.values[row, columns], known).reindex(table.index)
    table["reference_error"] = pd.Series(stars.errors[row, columns], known).reindex(table.index)
    table["reference_in_95"] = reference_inside_95(table)
    return table, flags


def reference_inside_95(table) -> pd.Series:
    """Whether each reference label lies inside the posterior's central 95% interval, each side
    widened in quadrature by 1.96 x the reference's own error (NaN without a reference)."""
    error = 1.96 * table["reference_error"].fillna(0.0)
    low = table["q50"] - np.hypot(table["q50"] - table["q02_5"], error)
    high = table["q50"] + np.hypot(table["q97_5"] - table["q50"], error)
    inside = (table["reference"] >= low) & (table["reference"] <= high)
    return inside.where(table["reference"].notna())


def _write_star(out: Path, source: int, method: str, idata, table, flags, plots: bool) -> None:
    """Figures, the star's summary rows, then its .nc: the .nc's presence marks it done."""
    if plots:
        reference = {name: value for name, value in table["reference"].items()}
        plot_corner(idata, out / f"{source}_corner.png", reference)
        plot_trace(idata, out / f"{source}_trace.png")
        plot_spectrum(idata, out / f"{source}_spectrum.png")
    atomic_write_text(
        out / "stars" / f"{source}.csv", _summary_rows(source, method, table, flags, idata)
    )
    with atomic_path(out / f"{source}.nc") as tmp:
        az.to_netcdf(idata, str(tmp))
    _rebuild_summary(out)


def _trust(setup, stars, row, idata, converged) -> dict:
    """The star's trust flags (``bayesfm.trust``) from its posterior draws."""
    prepared = prepare_stars(setup, stars.take([row]))
    draws = np.stack([idata.posterior[n].values.reshape(-1) for n in LABEL_INPUTS], axis=-1)
    medians = np.median(draws, axis=0)[None]
    columns = assess(
        setup, prepared.data, medians, draws[None], [converged], prepared.start, TrustCriteria()
    )
    flags = {name: columns[name][0] for name in columns}
    flags["notes"] = flag_notes(flags["fit_ok"], flags["in_domain"], flags["amortized_in_domain"])
    if not converged:
        flags["notes"].append("the sampler's own checks failed")
    return flags


def _attr(value):
    """A netCDF-safe attribute (no booleans)."""
    return int(value) if isinstance(value, bool | np.bool_) else float(value)


def _csv_text(header, rows) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()


def _finished(out: Path, source: int) -> bool:
    """Whether a star's netCDF and summary rows exist and read back; removes a damaged one."""
    nc, rows = out / f"{source}.nc", out / "stars" / f"{source}.csv"
    if not nc.exists():
        return False
    try:
        az.from_netcdf(str(nc)).close()
    except Exception:  # netCDF/HDF5 raise many types for a truncated file
        nc.unlink()
        return False
    return rows.exists()


def _summary_rows(source, method, table, flags, idata) -> str:
    seconds = idata.posterior.attrs.get("sampling_seconds", np.nan)
    return "".join(
        f"{source},{method},{name},{r['q50']:.6g},{r['q16']:.6g},{r['q84']:.6g},{r['mean']:.6g},"
        f"{r['sd']:.6g},{r['r_hat']:.4g},{r['ess_bulk']:.0f},{r['reference']:.6g},"
        f"{flags['divergences']},{flags['converged']},{seconds:.2f},{flags['fit_p']:.4g},"
        f"{flags['outside_domain_fraction']:.4g},{bool(flags['trusted'])}\n"
        for name, r in table.iterrows()
    )


def _rebuild_summary(out: Path) -> None:
    """summary.csv from the stars whose netCDF is in place (in source-id order)."""
    done = sorted(
        path for path in (out / "stars").glob("*.csv") if (out / f"{path.stem}.nc").exists()
    )
    atomic_write_text(out / "summary.csv", _HEADER + "".join(path.read_text() for path in done))
