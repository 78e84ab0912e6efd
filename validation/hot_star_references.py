"""Whether APOGEE's labels of hot stars agree with their own Gaia colours.

Run:  python validation/hot_star_references.py [--catalogue runs/validation_session/heldout]

All library stars with ak_targ below 0.05 mag (E(BP-RP) below about 0.2 mag), in bins of APOGEE
teff: their median observed BP-RP and its spread. Any published colour-temperature sequence is
bluer at every step from 7,000 to 30,000 K; a median that stays flat or turns redder says the
labels there disagree with the photometry. With ``--catalogue`` (the report's held-out run),
also the posterior's teff residual and 68% coverage of APOGEE per bin.
Prints the table, writes validation/hot_star_references.json and
validation/figures/hot_star_references.png.
"""

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from bayesfm.common.metrics import robust_sigma
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.sources.library import load_library

LOW_EXTINCTION_MAG = 0.05  # ak_targ below this
TEFF_EDGES = (3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 15000, 30000)
OUT = Path("validation")


def colour_by_teff(tokens) -> list[dict]:
    """Per APOGEE teff bin: stars, low-extinction stars and their BP-RP median and spread."""
    teff, a_k, bp_rp = tokens.values[:, tokens.index(["teff", "a_k", "bp_rp"])].T
    low = (a_k < LOW_EXTINCTION_MAG) & np.isfinite(bp_rp)
    rows = []
    for lo, hi in zip(TEFF_EDGES[:-1], TEFF_EDGES[1:], strict=True):
        in_bin = (teff >= lo) & (teff < hi)
        colour = bp_rp[in_bin & low]
        rows.append(
            {
                "teff": [lo, hi],
                "stars": int(in_bin.sum()),
                "low_extinction_stars": int(colour.size),
                "bp_rp_median": float(np.median(colour)) if colour.size else None,
                "bp_rp_robust_sigma": float(robust_sigma(colour)) if colour.size > 1 else None,
            }
        )
    return rows


def posterior_by_teff(catalogue: Path) -> list[dict]:
    """Per APOGEE teff bin of a held-out catalogue: teff residual of the posterior medians
    and how often the central 68% interval (APOGEE's error folded in) holds APOGEE's teff."""
    table = pd.read_csv(catalogue / "catalogue.csv")
    ref, err = table["teff_ref"].to_numpy(), table["teff_ref_err"].to_numpy()
    median, q16, q84 = (table[f"teff_{q}"].to_numpy() for q in ("median", "q16", "q84"))
    half = np.sqrt(((q84 - q16) / 2) ** 2 + err**2)
    inside = np.abs(ref - (q16 + q84) / 2) <= half
    rows = []
    for lo, hi in zip(TEFF_EDGES[:-1], TEFF_EDGES[1:], strict=True):
        in_bin = (ref >= lo) & (ref < hi) & np.isfinite(median)
        residual = median[in_bin] - ref[in_bin]
        rows.append(
            {
                "teff": [lo, hi],
                "stars": int(in_bin.sum()),
                "median_residual": float(np.median(residual)) if residual.size else None,
                "coverage_68": float(inside[in_bin].mean()) if residual.size else None,
            }
        )
    return rows


def plot(colour_rows, path: Path) -> None:
    import matplotlib.pyplot as plt

    centre = [np.sqrt(r["teff"][0] * r["teff"][1]) for r in colour_rows]
    median = [r["bp_rp_median"] for r in colour_rows]
    spread = [r["bp_rp_robust_sigma"] or 0 for r in colour_rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(centre, median, yerr=spread, fmt="o-", capsize=3)
    ax.set_xscale("log")
    ax.axvline(7000, color="grey", ls=":")
    ax.set_xlabel("APOGEE teff [K]")
    ax.set_ylabel(f"observed BP-RP, ak_targ < {LOW_EXTINCTION_MAG} mag [mag]")
    ax.set_title("Gaia colour against APOGEE teff (median, robust sigma)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=None, help="a held-out catalogue run")
    args = parser.parse_args()
    matplotlib.use("Agg")
    binning = FoundationModel.load().vocabulary.binning
    colour_rows = colour_by_teff(load_library(binning=binning).tokens)
    results = {"low_extinction_mag": LOW_EXTINCTION_MAG, "colour_by_teff": colour_rows}
    print(f"APOGEE teff [K]   stars  ak_targ<{LOW_EXTINCTION_MAG}  BP-RP median  robust sigma")
    for r in colour_rows:
        lo, hi = r["teff"]
        median = "-" if r["bp_rp_median"] is None else f"{r['bp_rp_median']:.3f}"
        spread = "-" if r["bp_rp_robust_sigma"] is None else f"{r['bp_rp_robust_sigma']:.3f}"
        print(
            f"{lo:>6}-{hi:<6} {r['stars']:>8} {r['low_extinction_stars']:>11}"
            f" {median:>13} {spread:>13}"
        )
    if args.catalogue is not None:
        results["posterior_by_teff"] = posterior_by_teff(args.catalogue)
        print("\nAPOGEE teff [K]   stars  median(posterior - APOGEE)  68% coverage")
        for r in results["posterior_by_teff"]:
            if r["stars"]:
                lo, hi = r["teff"]
                print(
                    f"{lo:>6}-{hi:<6} {r['stars']:>6} {r['median_residual']:>26.0f}"
                    f" {r['coverage_68']:>13.3f}"
                )
    (OUT / "hot_star_references.json").write_text(json.dumps(results, indent=1))
    plot(colour_rows, OUT / "figures" / "hot_star_references.png")
    print(f"wrote {OUT / 'hot_star_references.json'} and the figure")


if __name__ == "__main__":
    main()
