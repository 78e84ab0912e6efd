"""Convergence summaries of a star's posterior: R-hat, ESS, divergences and a verdict."""

import logging
from contextlib import contextmanager
from typing import NamedTuple

import arviz as az
import numpy as np

from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["ConvergenceCriteria", "summarise", "quiet_arviz"]


@contextmanager
def quiet_arviz():
    """Silence ArviZ's shape-validation log lines (one chain of a variational fit is
    expected, and the lines would break a progress bar)."""
    logger = logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class ConvergenceCriteria(NamedTuple):
    max_rhat: float = 1.01
    min_ess_bulk: float = 400.0
    max_divergences: int = 0
    max_khat: float = 0.7  # variational fits: PSIS k-hat of the guide as importance proposal

    def passed(self, max_rhat, min_ess_bulk, divergences):
        """The one MCMC verdict, for one star or arrays of stars: R-hat (finite: it needs two
        or more chains), bulk ESS and divergences all within the criteria."""
        return (
            np.isfinite(max_rhat)
            & (max_rhat <= self.max_rhat)
            & (min_ess_bulk >= self.min_ess_bulk)
            & (divergences <= self.max_divergences)
        )


def summarise(idata: az.InferenceData, criteria=ConvergenceCriteria()):
    """(summary table, flags) for the physical labels.

    Returns:
        A pandas DataFrame (ArviZ summary: mean, sd, 2.5/16/50/84/97.5% quantiles, r_hat, ess_bulk,
        ess_tail) and a dict with ``divergences``, ``max_rhat``, ``min_ess_bulk`` and
        ``converged``. For NUTS: R-hat, ESS and divergences all within ``criteria`` (R-hat
        needs two or more chains). For a variational fit (``method`` "svi-*" in the
        posterior's attributes): the ELBO settled and the PSIS k-hat of the guide, used as
        an importance proposal for the posterior, is at most ``max_khat``; ``khat`` and ``elbo_settled`` are added.
    """
    names = [n for n in LABEL_INPUTS if n in idata.posterior]
    # unrounded: the verdict must not pass an R-hat of 1.014 as 1.01
    with quiet_arviz():
        table = az.summary(idata, var_names=names, kind="all", round_to="none")
    levels = (0.025, 0.16, 0.5, 0.84, 0.975)
    quantiles = idata.posterior[names].quantile(list(levels), dim=("chain", "draw"))
    for q, column in zip(levels, ("q02_5", "q16", "q50", "q84", "q97_5"), strict=True):
        table[column] = [float(quantiles[n].sel(quantile=q)) for n in names]
    diverging = idata.sample_stats.get("diverging")
    divergences = int(diverging.sum()) if diverging is not None else 0
    max_rhat = float(np.nanmax(table["r_hat"])) if table["r_hat"].notna().any() else float("nan")
    min_ess = float(table["ess_bulk"].min())
    flags = {"divergences": divergences, "max_rhat": max_rhat, "min_ess_bulk": min_ess}
    attrs = idata.posterior.attrs
    if str(attrs.get("method", "")).startswith("svi"):
        flags["khat"] = float(attrs.get("svi_khat", np.nan))
        flags["elbo_settled"] = bool(attrs.get("elbo_settled", 0))
        flags["converged"] = flags["elbo_settled"] and flags["khat"] <= criteria.max_khat
        return table, flags
    flags["converged"] = bool(criteria.passed(max_rhat, min_ess, divergences))
    return table, flags
