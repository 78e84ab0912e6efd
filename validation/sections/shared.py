"""What several sections use: reference labels, calibration against them, bins of the
held-out stars, thresholds of the targets, and the markdown and figure helpers."""

import matplotlib.pyplot as plt
import numpy as np

from bayesfm.common.metrics import residual_stats
from bayesfm.infer.calibration import central_coverage, pit_values, z_scores
from bayesfm.tokens.star_tokens import StarTokens

CALIBRATED = ("teff", "logg", "fe_h")  # the labels the coverage target is set for
TARGET = 0.03  # |coverage - nominal| allowed at 68% and 95%
SBC_ALPHA = 0.01  # an SBC uniformity test passes with p above this
UNITS = {"teff": "K", "logg": "dex", "fe_h": "dex", "alpha_m": "dex", "a_k": "mag"}
BINS = {  # reference quantity -> bin edges
    "teff": [3000, 4000, 4500, 5000, 5500, 6000, 8000],
    "logg": [-1, 1.5, 2.5, 3.5, 4.2, 6],
    "snr": [0, 100, 200, 400, 1e5],
    "a_k": [-1, 0.02, 0.05, 0.1, 0.3, 5],
}


def reference(stars: StarTokens, name):
    """A survey label's values and errors (float arrays, NaN where missing)."""
    values, errors = stars.column(name)
    return np.asarray(values, float), np.asarray(errors, float)


def calibration(draws, truth, error) -> dict:
    """Central-interval coverage of ``truth`` by ``draws`` [n, S] (errors folded in), the
    z-scores' spread and centre, and the PIT values and z-scores themselves."""
    pit = pit_values(draws, truth, error)
    z = z_scores(draws, truth, error)
    return {
        "coverage": central_coverage(pit),
        "z_sd": float(np.nanstd(z)),
        "z_median": float(np.nanmedian(z)),
        "n": int(np.isfinite(pit).sum()),
        "pit": pit,
        "z": z,
    }


def bin_members(test: StarTokens, snr):
    """(quantity, [lo, hi], star mask) for every bin of BINS holding at least 10 test stars."""
    quantities = {"snr": snr, **{q: reference(test, q)[0] for q in BINS if q != "snr"}}
    for quantity, edges in BINS.items():
        which = np.digitize(quantities[quantity], edges) - 1
        for b in range(len(edges) - 1):
            if (which == b).sum() >= 10:
                yield quantity, [edges[b], edges[b + 1]], which == b


def binned(median, draws, truth, error, test: StarTokens, snr) -> dict:
    """Accuracy and 68/95% coverage of one label per bin of each reference quantity."""
    out = {quantity: [] for quantity in BINS}
    for quantity, edges, sel in bin_members(test, snr):
        cov = central_coverage(pit_values(draws[sel], truth[sel], error[sel]))
        out[quantity].append(
            {
                "bin": edges,
                **residual_stats(median[sel], truth[sel]),
                "coverage_68": cov["0.68"],
                "coverage_95": cov["0.95"],
            }
        )
    return out


def table(header, rows) -> list[str]:
    """A markdown table, followed by a blank line."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def panels(n, height=3.0):
    """A figure with ``n`` panels side by side, and its axes."""
    figure, axes = plt.subplots(1, n, figsize=(3.2 * n, height))
    return figure, np.atleast_1d(axes)
