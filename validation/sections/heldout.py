"""1. Held-out APOGEE stars: accuracy of the posterior medians against the amortized network
and XGBoost, calibration of the intervals, trusted vs flagged stars, and both per bin."""

import matplotlib.pyplot as plt
import numpy as np
from evaluate_transformer import xgboost_predictions
from report_context import timed

from bayesfm.common.metrics import residual_stats
from bayesfm.infer.setup import amortized_labels
from bayesfm.tokens.labels import LABEL_INPUTS, LABELS
from sections.shared import (
    CALIBRATED,
    UNITS,
    binned,
    calibration,
    panels,
    reference,
    table,
)

NAME = "heldout"
USES = ()


def compute(ctx, results) -> dict:
    settings = ctx.config.catalogue_settings(ctx.config.test_method, samplers_only=False)
    held = timed("held-out catalogue", ctx.catalogue_draws, ctx.test, "heldout", settings)
    amortized = amortized_labels(ctx.setup, ctx.test)[0]
    observables = [n for n in ctx.setup.emulator.outputs if n in ctx.tokens.names]
    xgb = timed("xgboost", xgboost_predictions, ctx.tokens, observables, list(LABELS), ctx.splits)
    xgb = {k: v[: len(ctx.test)] for k, v in xgb.items()}
    draws, table_ = held["draws"], held["table"]
    ok = table_["ok"].to_numpy(bool)
    medians = np.nanmedian(draws, axis=1)
    out = {"paths": table_["path"].value_counts(normalize=True).to_dict(), "ok_fraction": ok.mean()}
    out["accuracy"], out["calibration"], out["calibration_ok_only"], out["by_bin"] = {}, {}, {}, {}
    arrays = {"medians": medians}
    for i, name in enumerate(LABEL_INPUTS):
        truth, error = reference(ctx.test, name)
        row = {"posterior_median": residual_stats(medians[:, i], truth)}
        row["amortized"] = residual_stats(amortized[:, i], truth)
        if name in xgb:
            row["xgboost"] = residual_stats(xgb[name], truth)
        out["accuracy"][name] = row
        cal = calibration(draws[..., i], truth, error)
        arrays[name] = {"pit": cal.pop("pit"), "z": cal.pop("z"), "truth": truth}
        out["calibration"][name] = cal
        cal_ok = calibration(draws[ok, :, i], truth[ok], error[ok])
        out["calibration_ok_only"][name] = {k: cal_ok[k] for k in ("coverage", "z_sd", "n")}
        out["by_bin"][name] = binned(medians[:, i], draws[..., i], truth, error, ctx.test, ctx.snr)
    out["by_trust"] = by_trust(ctx.test, draws, medians, table_["trusted"].to_numpy(bool))
    out["seconds"] = held["seconds"]
    out["arrays"] = arrays
    return out


def by_trust(test, draws, medians, trusted) -> dict:
    """Share of trusted stars, and robust sigma and 68/95% coverage of trusted and flagged
    stars (``bayesfm.infer.trust``): flags that mean something separate the two."""
    fitted = np.isfinite(medians).all(axis=1)
    out = {"trusted_fraction": float(trusted[fitted].mean())}
    for group, mask in (("trusted", fitted & trusted), ("flagged", fitted & ~trusted)):
        out[group] = {"n": int(mask.sum())}
        for i, name in enumerate(LABEL_INPUTS):
            truth, error = reference(test, name)
            coverage = calibration(draws[mask, :, i], truth[mask], error[mask])["coverage"]
            out[group][name] = {
                "robust_sigma": residual_stats(medians[mask, i], truth[mask])["robust_sigma"],
                "coverage_68": coverage["0.68"],
                "coverage_95": coverage["0.95"],
            }
    return out


def first_computed(section) -> dict:
    return {"held-out catalogue": section["seconds"]}


def markdown(results) -> list[str]:
    section = results[NAME]
    acc = section["accuracy"]
    rows = []
    for name in LABEL_INPUTS:
        row = [name]
        for source in ("posterior_median", "amortized", "xgboost"):
            s = acc[name].get(source)
            row.append("-" if s is None else f"{s['robust_sigma']:.3g} / {s['bias']:+.3g}")
        row.append(acc[name]["posterior_median"]["n"])
        rows.append(row)
    paths = ", ".join(f"{k or 'none'} {v:.0%}" for k, v in section["paths"].items())
    out = [
        "## 1. Held-out APOGEE stars",
        "",
        f"Paths: {paths}; {section['ok_fraction']:.0%} of stars passed their checks "
        "(k-hat and ESS, or R-hat, ESS and divergences).",
        "",
        "Robust sigma / bias (median residual) against APOGEE; RMS is in results.json.",
        "",
        *table(["label", "posterior median", "amortized transformer", "XGBoost", "n"], rows),
        "![accuracy](figures/accuracy.png)",
        "",
        "### Calibration (APOGEE errors folded in)",
        "",
    ]
    rows = []
    for name in LABEL_INPUTS:
        c, k = section["calibration"][name], section["calibration_ok_only"][name]["coverage"]
        rows.append(
            [name]
            + [f"{c['coverage'][lvl]:.3f}" for lvl in ("0.50", "0.68", "0.90", "0.95")]
            + [f"{c['z_sd']:.2f}", f"{k['0.68']:.3f} / {k['0.95']:.3f}"]
        )
    out += table(["label", "50%", "68%", "90%", "95%", "sd(z)", "68/95% (passed stars only)"], rows)
    out += ["![calibration](figures/calibration.png)", "", *_by_trust_text(section["by_trust"])]
    out += ["### By bin", ""]
    for name in CALIBRATED:
        for quantity, bins in section["by_bin"][name].items():
            out.append(
                f"- {name} by {quantity}: "
                + "; ".join(
                    f"[{b['bin'][0]:g}, {b['bin'][1]:g}) n={b['n']} sigma={b['robust_sigma']:.3g} "
                    f"cov68={b['coverage_68']:.2f} cov95={b['coverage_95']:.2f}"
                    for b in bins
                )
            )
    return out + ["", "![coverage by bin](figures/coverage_by_bin.png)", ""]


def _by_trust_text(section) -> list[str]:
    """Trusted vs flagged stars (docs/conventions.md, trust flags)."""
    rows = [
        [name]
        + [
            f"{s[name]['robust_sigma']:.3g} / {s[name]['coverage_68']:.3f} / {s[name]['coverage_95']:.3f}"
            for s in (section["trusted"], section["flagged"])
        ]
        for name in LABEL_INPUTS
    ]
    header = [
        "label",
        f"trusted ({section['trusted']['n']} stars): robust sigma / 68% / 95%",
        f"flagged ({section['flagged']['n']} stars)",
    ]
    return [
        "### Trusted vs flagged stars",
        "",
        f"{section['trusted_fraction']:.1%} of the fitted stars are `trusted` (fit p-value, "
        "training domain and the sampler's checks all pass).",
        "",
        *table(header, rows),
    ]


def accuracy(results):
    """Posterior medians against APOGEE, held-out stars."""
    arrays = results[NAME]["arrays"]
    figure, axes = panels(len(LABEL_INPUTS))
    for i, (ax, name) in enumerate(zip(axes, LABEL_INPUTS, strict=True)):
        truth, median = arrays[name]["truth"], arrays["medians"][:, i]
        ax.scatter(truth, median, s=2, alpha=0.4)
        ok = np.isfinite(truth) & np.isfinite(median)
        lo, hi = np.percentile(np.concatenate([truth[ok], median[ok]]), [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), title=name, xlabel=f"APOGEE [{UNITS[name]}]")
    axes[0].set_ylabel("posterior median")
    return figure


def calibration_figure(results):
    """PIT histograms (APOGEE errors folded in) and z-scores, held-out stars."""
    arrays = results[NAME]["arrays"]
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
    by_bin = results[NAME]["by_bin"]
    quantities = list(next(iter(by_bin.values())))
    figure, axes = panels(len(quantities))
    for ax, quantity in zip(axes, quantities, strict=True):
        for name in LABEL_INPUTS:
            rows = by_bin[name][quantity]
            centres = [np.mean(np.clip(r["bin"], -1, 1e4)) for r in rows]
            line = ax.plot(range(len(rows)), [r["coverage_68"] for r in rows], "o-", label=name)
            ax.plot(
                range(len(rows)), [r["coverage_95"] for r in rows], "s--", color=line[0].get_color()
            )
            ax.set_xticks(range(len(rows)), [f"{c:.3g}" for c in centres], rotation=45)
        for level in (0.68, 0.95):
            ax.axhline(level, color="k", lw=0.6)
        ax.set(title=f"by {quantity}", ylim=(0, 1.02), xlabel=f"{quantity} (bin centre)")
    axes[0].set_ylabel("coverage (o 68%, s 95%)")
    axes[-1].legend(fontsize=7)
    return figure


FIGURES = {
    "accuracy": accuracy,
    "calibration": calibration_figure,
    "coverage_by_bin": coverage_by_bin,
}
