"""The overview figure of a finished catalogue: its Kiel diagram and, where the input carried
reference labels (e.g. APOGEE), the posterior medians against them.

The catalogue is read in parts, a few columns at a time, and a random subset of at most
``most_shown`` stars is drawn, so that memory stays bounded however many stars it holds; the
counts in the title are over every star.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayesfm.common.errors import DataError
from bayesfm.common.metrics import robust_sigma
from bayesfm.plot_style import plain_plotting

__all__ = ["plot_catalogue"]

COMPARED = ("teff", "logg", "fe_h")  # labels set against their references, where present
UNITS = {"teff": "K", "logg": "dex", "fe_h": "dex"}
KIEL_TEFF_TICKS = (3000, 4000, 5000, 6000, 8000, 10000, 15000, 20000, 30000, 50000)
_ROWS_PER_READ = 200_000


def plot_catalogue(csv_path, png_path, most_shown: int = 50_000, seed: int = 0) -> dict:
    """Write the overview figure of the catalogue ``csv_path`` to ``png_path``.

    Returns what it shows: the counts (stars, stars per path, passing their checks,
    trusted), how many stars it drew at random (shown), and the labels set against their
    references (compared).
    """
    shown, counts = _subset(Path(csv_path), most_shown, seed)
    compared = [n for n in COMPARED if np.isfinite(shown.get(f"{n}_ref", [np.nan])).any()]
    with plain_plotting():
        fig, axes = plt.subplots(
            1, 1 + len(compared), figsize=(6 + 5 * len(compared), 5.0), squeeze=False
        )
        _kiel(axes[0, 0], shown)
        for ax, name in zip(axes[0, 1:], compared, strict=True):
            _against_reference(ax, shown, name)
        paths = ", ".join(f"{n:,} {p}" for p, n in sorted(counts["paths"].items()))
        fig.suptitle(
            f"{counts['stars']:,} stars ({paths})\n{counts['passed']:,} pass their checks, "
            f"{counts['trusted']:,} trusted"
            + (f"; {len(shown):,} shown at random" if len(shown) < counts["stars"] else "")
        )
        fig.tight_layout()
        fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return counts | {"shown": len(shown), "compared": compared}


def _subset(path: Path, most: int, seed: int):
    """(a uniform random subset of at most ``most`` rows, counts over every row), reading
    ``_ROWS_PER_READ`` rows at a time: each row draws a uniform key, the smallest keys stay."""
    header = pd.read_csv(path, nrows=0).columns
    wanted = ["path", "ok", "trusted"] + [
        f"{n}_{part}" for n in COMPARED for part in ("median", "sd", "ref", "ref_err")
    ]
    rng = np.random.default_rng(seed)
    kept, counts = None, {"stars": 0, "paths": {}, "passed": 0, "trusted": 0}
    for part in pd.read_csv(
        path, usecols=[c for c in wanted if c in header], chunksize=_ROWS_PER_READ
    ):
        counts["stars"] += len(part)
        for name, n in part["path"].fillna("").value_counts().items():
            counts["paths"][name or "nothing"] = counts["paths"].get(name or "nothing", 0) + n
        counts["passed"] += int(part["ok"].sum())
        counts["trusted"] += int(part["trusted"].sum())
        part = part.assign(key=rng.random(len(part)))
        kept = part if kept is None else pd.concat([kept, part])
        kept = kept.nsmallest(most, "key")
    if counts["stars"] == 0:
        raise DataError(f"{path} holds no stars; there is nothing to plot")
    return kept.sort_values("key").drop(columns="key").reset_index(drop=True), counts


def _kiel(ax, shown) -> None:
    """teff against logg of the posterior medians, trusted stars coloured by fe_h."""
    teff, logg = shown["teff_median"].to_numpy(), shown["logg_median"].to_numpy()
    trusted = shown["trusted"].to_numpy(bool)
    size = _marker_size(len(shown))
    points = ax.scatter(
        teff[trusted],
        logg[trusted],
        c=shown["fe_h_median"][trusted],
        s=size,
        cmap="viridis",
        vmin=-1.5,
        vmax=0.5,
        label="trusted",
    )
    plt.colorbar(points, ax=ax, label="[Fe/H] median")
    sampled = shown["path"].isin(["importance", "nuts"]).to_numpy()
    amortized = (shown["path"] == "amortized").to_numpy()
    others = (
        (sampled & ~trusted, "C3", "x", "sampled, flagged"),
        (amortized, "0.6", "+", "amortized labels (outside the training domain)"),
    )
    for rows, colour, marker, label in others:
        ax.scatter(teff[rows], logg[rows], s=size, c=colour, marker=marker, label=label)
    # a log teff axis holds the amortized labels of stars hotter than the training domain
    # (up to tens of thousands of K) without squeezing the cool stars
    ax.set_xscale("log")
    ax.set_xlim(
        max(8000.0, np.nanmax(teff, initial=0.0) * 1.05),
        min(3000.0, np.nanmin(teff, initial=np.inf) * 0.95),
    )
    ticks = [t for t in KIEL_TEFF_TICKS if ax.get_xlim()[1] <= t <= ax.get_xlim()[0]]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(
        max(5.5, np.nanmax(logg, initial=0.0) + 0.2), min(-0.5, np.nanmin(logg, initial=0.0) - 0.2)
    )
    ax.set_xlabel("teff median [K]")
    ax.set_ylabel("logg median [dex]")
    ax.set_title("Kiel diagram of the posterior medians")
    ax.legend(loc="upper left", fontsize=7)


def _against_reference(ax, shown, name: str) -> None:
    """Posterior median against the reference label: trusted stars in colour with the robust
    sigma of their offsets and their 68% coverage (the reference's error folded in)."""
    median, ref = shown[f"{name}_median"].to_numpy(), shown[f"{name}_ref"].to_numpy()
    has = np.isfinite(median) & np.isfinite(ref)
    trusted = has & shown["trusted"].to_numpy(bool)
    size = _marker_size(has.sum())
    ax.scatter(ref[has & ~trusted], median[has & ~trusted], s=size, c="0.6", label="flagged")
    ax.scatter(ref[trusted], median[trusted], s=size, c="C0", label="trusted")
    low, high = np.nanpercentile(ref[has], [0.5, 99.5]) if has.any() else (0.0, 1.0)
    ax.plot([low, high], [low, high], color="k", lw=0.8)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    if trusted.any():
        offset = median[trusted] - ref[trusted]
        spread = np.hypot(shown[f"{name}_sd"], shown[f"{name}_ref_err"]).to_numpy()[trusted]
        ax.text(
            0.03,
            0.97,
            f"trusted: robust sigma {robust_sigma(offset):.3g} {UNITS[name]}\n"
            f"68% coverage {np.mean(np.abs(offset) < spread):.2f} ({trusted.sum():,} stars)",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
    ax.locator_params(nbins=5)
    ax.set_xlabel(f"{name} reference [{UNITS[name]}]")
    ax.set_ylabel(f"{name} posterior median [{UNITS[name]}]")
    ax.legend(loc="lower right", fontsize=7)


def _marker_size(n: int) -> float:
    """Points big enough to see for a few stars, small enough not to merge for many."""
    return float(np.clip(2e4 / max(n, 1), 1, 30))
