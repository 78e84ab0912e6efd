"""Convergence summaries of a star's posterior: R-hat, ESS, divergences and a verdict."""

from typing import NamedTuple

import arviz as az
import numpy as np

from .emulator import LABEL_INPUTS

__all__ = ["ConvergenceCriteria", "summarise"]


class ConvergenceCriteria(NamedTuple):
    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    max_divergences: int = 0


def summarise(idata: az.InferenceData, criteria=ConvergenceCriteria()):
    """(summary table, flags) for the physical labels.

    Returns:
        A pandas DataFrame (ArviZ summary: mean, sd, 16/50/84% quantiles, r_hat, ess_bulk,
        ess_tail) and a dict with ``divergences``, ``max_rhat``, ``min_ess_bulk`` and
        ``converged`` (R-hat, ESS and divergences all within ``criteria``; R-hat needs two
        or more chains, so one-chain or variational fits are never flagged converged).
    """
    names = [n for n in LABEL_INPUTS if n in idata.posterior]
    # unrounded: the verdict must not pass an R-hat of 1.014 as 1.01
    table = az.summary(idata, var_names=names, kind="all", round_to="none")
    quantiles = idata.posterior[names].quantile([0.16, 0.5, 0.84], dim=("chain", "draw"))
    for q, column in zip((0.16, 0.5, 0.84), ("q16", "q50", "q84"), strict=True):
        table[column] = [float(quantiles[n].sel(quantile=q)) for n in names]
    diverging = idata.sample_stats.get("diverging")
    divergences = int(diverging.sum()) if diverging is not None else 0
    max_rhat = float(np.nanmax(table["r_hat"])) if table["r_hat"].notna().any() else float("nan")
    min_ess = float(table["ess_bulk"].min())
    converged = bool(
        np.isfinite(max_rhat)
        and max_rhat <= criteria.max_rhat
        and min_ess >= criteria.min_ess_bulk
        and divergences <= criteria.max_divergences
    )
    flags = {
        "divergences": divergences,
        "max_rhat": max_rhat,
        "min_ess_bulk": min_ess,
        "converged": converged,
    }
    return table, flags
