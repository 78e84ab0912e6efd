"""A catalogue's rows: one per star, its columns, and the summary of its posterior draws."""

import numpy as np
import pandas as pd

from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["QUANTILES", "empty_table", "summarise_draws"]

QUANTILES = {"q02_5": 0.025, "q16": 0.16, "median": 0.5, "q84": 0.84, "q97_5": 0.975}


def empty_table(stars: StarTokens) -> pd.DataFrame:
    """One row per star with its source id, every column at "not yet fitted", and the
    reference labels the stars carry."""
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
            "amortized_in_domain": False,
            "trusted": False,
        }
    )
    for name in LABEL_INPUTS:
        if name in stars.names:  # reference labels (e.g. APOGEE) travel with the results
            values, errors = stars.column(name)
            table[f"{name}_ref"] = values
            table[f"{name}_ref_err"] = errors
    return table


def summarise_draws(table, draws) -> None:
    """Each label's ``QUANTILES``, mean and sd over the finite draws [n, S, 5] of each star."""
    finite = np.isfinite(draws[..., 0])
    rows = finite.any(axis=1)
    for i, name in enumerate(LABEL_INPUTS):
        x = np.where(finite, draws[..., i], np.nan)[rows]
        quantiles = np.full((len(QUANTILES), len(draws)), np.nan)
        moments = np.full((2, len(draws)), np.nan)
        if rows.any():
            with np.errstate(all="ignore"):  # one sort for all quantiles: 5x faster than each
                quantiles[:, rows] = np.nanquantile(x, list(QUANTILES.values()), axis=1)
                moments[:, rows] = np.nanmean(x, axis=1), np.nanstd(x, axis=1)
        for column, values in zip(QUANTILES, quantiles, strict=True):
            table[f"{name}_{column}"] = values
        table[f"{name}_mean"], table[f"{name}_sd"] = moments
