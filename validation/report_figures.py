"""Figures of the validation report, drawn from the results the report computed."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bayesfm.tokens.labels import LABEL_INPUTS  # noqa: E402

UNITS = {"teff": "K", "logg": "dex", "fe_h": "dex", "alpha_m": "dex", "a_k": "mag"}


def write_figures(results: dict, folder: Path, sections) -> None:
    """Draw the figures of the report's ``sections`` (the ones computed in this run)."""
    for draw, section in (
        (accuracy, "heldout"),
        (calibration, "heldout"),
        (coverage_by_bin, "heldout"),
        (sbc, "sbc"),
        (sbc_truth_sigma, "sbc_truth_sigma"),
        (extinction, "extinction_curve"),
        (hidden, "hidden_spectrum"),
        (loci, "loci"),
    ):
        if section in sections:
            figure = draw(results)
            figure.savefig(folder / f"{draw.__name__}.png", dpi=110, bbox_inches="tight")
            plt.close(figure)


def _panels(n, height=3.0):
    figure, axes = plt.subplots(1, n, figsize=(3.2 * n, height))
    return figure, np.atleast_1d(axes)


def accuracy(results):
    """Posterior medians against APOGEE, held-out stars."""
    arrays = results["heldout"]["arrays"]
    figure, axes = _panels(len(LABEL_INPUTS))
    for i, (ax, name) in enumerate(zip(axes, LABEL_INPUTS, strict=True)):
        truth, median = arrays[name]["truth"], arrays["medians"][:, i]
        ax.scatter(truth, median, s=2, alpha=0.4)
        ok = np.isfinite(truth) & np.isfinite(median)
        lo, hi = np.percentile(np.concatenate([truth[ok], median[ok]]), [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), title=name, xlabel=f"APOGEE [{UNITS[name]}]")
    axes[0].set_ylabel("posterior median")
    return figure


def calibration(results):
    """PIT histograms (APOGEE errors folded in) and z-scores, held-out stars."""
    arrays = results["heldout"]["arrays"]
    figure, axes = plt.subplots(2, len(LABEL_INPUTS), figsize=(3.2 * len(LABEL_INPUTS), 5.5))
    for i, name in enumerate(LABEL_INPUTS):
        pit, z = arrays[name]["pit"], arrays[name]["z"]
        axes[0, i].hist(pit[np.isfinite(pit)], bins=20, range=(0, 1), density=True)
        axes[0, i].axhline(1.0, color="k", lw=0.8)
        axes[0, i].set(title=name, xlabel="PIT")
        z = z[np.isfinite(z)]
        axes[1, i].hist(np.clip(z, -5, 5), bins=40, range=(-5, 5), density=True)
        grid = np.linspace(-5, 5, 200)
        axes[1, i].plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k-", lw=0.8)
        axes[1, i].set(xlabel="z = (APOGEE - mean) / total sd")
    return figure


def coverage_by_bin(results):
    """68% and 95% coverage per bin of teff, logg, S/N and extinction."""
    by_bin = results["heldout"]["by_bin"]
    quantities = list(next(iter(by_bin.values())))
    figure, axes = _panels(len(quantities))
    for ax, quantity in zip(axes, quantities, strict=True):
        for name in LABEL_INPUTS:
            rows = by_bin[name][quantity]
            centres = [np.mean(np.clip(r["bin"], -1, 1e4)) for r in rows]
            line = ax.plot(range(len(rows)), [r["coverage_68"] for r in rows], "o-", label=name)
            ax.plot(
                range(len(rows)),
                [r["coverage_95"] for r in rows],
                "s--",
                color=line[0].get_color(),
            )
            ax.set_xticks(range(len(rows)), [f"{c:.3g}" for c in centres], rotation=45)
        for level in (0.68, 0.95):
            ax.axhline(level, color="k", lw=0.6)
        ax.set(title=f"by {quantity}", ylim=(0, 1.02), xlabel=f"{quantity} (bin centre)")
    axes[0].set_ylabel("coverage (o 68%, s 95%)")
    axes[-1].legend(fontsize=7)
    return figure


def sbc(results):
    """SBC rank histograms per method and parameter."""
    return _rank_histograms(results["sbc"])


def sbc_truth_sigma(results):
    """SBC rank histograms with the likelihood's emulator sigma at the true labels."""
    return _rank_histograms(results["sbc_truth_sigma"])


def _rank_histograms(section):
    arrays = section["arrays"]
    methods = list(arrays["ranks"])
    figure, axes = plt.subplots(
        len(methods), len(LABEL_INPUTS), figsize=(3.0 * len(LABEL_INPUTS), 2.4 * len(methods))
    )
    axes = np.atleast_2d(axes)
    for r, method in enumerate(methods):
        for c, name in enumerate(LABEL_INPUTS):
            ranks = arrays["ranks"][method][name]
            axes[r, c].hist(ranks, bins=10, range=(-0.5, arrays["num_ranks"] + 0.5))
            axes[r, c].axhline(len(ranks) / 10, color="k", lw=0.8)
            p = section[method]["labels"][name]["p_value"]
            axes[r, c].set_title(f"{method}: {name} (p={p:.2g})", fontsize=9)
    figure.tight_layout()
    return figure


def extinction(results):
    """The emulator's extinction curve per stellar type vs Fitzpatrick (2019)."""
    section = results["extinction_curve"]
    wavelength = np.array(section["wavelength_nm"])
    f19 = np.array(section["fitzpatrick2019_A_over_A55"])
    figure, ax = plt.subplots(figsize=(6.5, 4))
    for name, row in section["types"].items():
        # on F19's scale: (curve - offset) / slope = A_lambda / A_55
        ax.plot(
            wavelength, (np.array(row["curve"]) - row["offset"]) / row["A55_over_AK"], label=name
        )
    ax.plot(wavelength, f19, "k--", lw=2, label="Fitzpatrick (2019), R55=3.02")
    ax.set(xlabel="wavelength [nm]", ylabel="A(lambda) / A(55)")
    ax.legend(fontsize=8)
    return figure


def hidden(results):
    """Coverage of the hidden flux tokens by the posterior predictive."""
    section = results["hidden_spectrum"]
    names = section["hidden_tokens"]
    figure, ax = plt.subplots(figsize=(6, 3.5))
    for level, marker in (("0.68", "o"), ("0.95", "s")):
        ax.plot(
            range(len(names)),
            [section["tokens"][n]["coverage"][level] for n in names],
            marker,
            label=f"{float(level):.0%} interval",
        )
        ax.axhline(float(level), color="k", lw=0.6)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylim=(0, 1.02), ylabel="coverage of hidden flux", title="hidden BP flux")
    ax.legend()
    return figure


def loci(results):
    """Colour-colour loci: observed vs emulated at the APOGEE labels and extinction."""
    section = results["loci"]
    colours, arrays = section["colours"], section["arrays"]
    figure, axes = _panels(len(section["pairs"]), height=3.4)
    for ax, (cx, cy) in zip(axes, section["pairs"], strict=True):
        i, j = colours.index(cx), colours.index(cy)
        for key, colour in (("observed", "0.5"), ("emulated", "C3")):
            ax.scatter(arrays[key][:, i], arrays[key][:, j], s=2, alpha=0.4, c=colour, label=key)
        ax.set(xlabel=cx, ylabel=cy)
    axes[0].legend(markerscale=5)
    return figure
