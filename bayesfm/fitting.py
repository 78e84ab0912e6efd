"""Fit a few stars and write everything a person looks at: netCDF, summary CSV, plots.

Each star's results are written as soon as it finishes, and a star whose netCDF file
already exists is skipped: an interrupted run resumes where it stopped.
"""

from pathlib import Path

import arviz as az
import jax
import numpy as np
from tqdm.auto import tqdm

from .diagnostics import summarise
from .emulator import LABEL_INPUTS
from .inference import GUIDES, NutsRunner, StarInference, run_svi
from .plots import plot_corner, plot_spectrum, plot_trace
from .star_tokens import StarTokens

__all__ = ["METHODS", "fit_stars"]

METHODS = ("nuts", *(f"svi-{g}" for g in GUIDES))


def fit_stars(
    setup: StarInference,
    stars: StarTokens,
    rows,
    out_dir,
    method="nuts",
    seed=0,
    nuts_options=None,
    plots=True,
    progress=True,
):
    """Fit stars ``rows`` and write ``<source_id>.nc``, ``<source_id>_*.png`` and ``summary.csv``.

    Returns:
        A list of (source_id, summary table, flags) for the stars fitted in this call.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runner = NutsRunner(setup, **(nuts_options or {})) if method == "nuts" else None
    results = []
    for row in tqdm(list(rows), desc=f"fitting ({method})", disable=not progress, unit="star"):
        source = int(stars.source_id[row])
        path = out / f"{source}.nc"
        if path.exists():
            continue
        key = jax.random.PRNGKey(seed + row)
        if runner is not None:
            idata = runner.run(stars, row, key)
        else:
            idata = run_svi(setup, stars, row, key, guide=method.removeprefix("svi-"))
        table, flags = summarise(idata)
        reference = {
            n: float(stars.values[row, stars.index([n])[0]])
            for n in LABEL_INPUTS
            if n in stars.names
        }
        table["reference"] = [reference.get(n, np.nan) for n in table.index]
        if plots:
            plot_corner(idata, out / f"{source}_corner.png", reference)
            plot_trace(idata, out / f"{source}_trace.png")
            plot_spectrum(idata, out / f"{source}_spectrum.png")
        _append_summary(out / "summary.csv", source, method, table, flags, idata)
        az.to_netcdf(idata, str(path.with_suffix(".nc.tmp")))
        path.with_suffix(".nc.tmp").replace(path)
        results.append((source, table, flags))
    return results


def _append_summary(path, source, method, table, flags, idata):
    new = not path.exists()
    seconds = idata.posterior.attrs.get("sampling_seconds", np.nan)
    with path.open("a") as f:
        if new:
            f.write(
                "source_id,method,label,median,q16,q84,mean,sd,r_hat,ess_bulk,reference,"
                "divergences,converged,sampling_seconds\n"
            )
        for name, r in table.iterrows():
            f.write(
                f"{source},{method},{name},{r['q50']:.6g},{r['q16']:.6g},{r['q84']:.6g},{r['mean']:.6g},"
                f"{r['sd']:.6g},{r['r_hat']:.4g},{r['ess_bulk']:.0f},{r['reference']:.6g},"
                f"{flags['divergences']},{flags['converged']},{seconds:.2f}\n"
            )
