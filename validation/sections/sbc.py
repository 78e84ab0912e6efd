"""3. Simulation-based calibration: rank uniformity of importance sampling, SVI and NUTS on
stars simulated from the prior through the emulator."""

import matplotlib.pyplot as plt
import numpy as np
from report_context import timed

from bayesfm.infer.calibration import rank_uniformity, sbc_ranks
from bayesfm.tokens.labels import LABEL_INPUTS
from sections.shared import SBC_ALPHA, table

NAME = "sbc"
USES = ()
METHODS = ("importance", "svi", "nuts")


def compute(ctx, results) -> dict:
    return timed("sbc", sbc_runs, ctx, "sbc", ctx.config.sbc_nuts_stars)


def sbc_runs(ctx, folder: str, nuts_stars: int, anchors=None) -> dict:
    """Rank histograms and uniformity tests of the three methods on the SBC stars (NUTS on
    the first ``nuts_stars``); ``anchors``: labels at which the likelihood takes the
    emulator sigma (default: the amortized prediction)."""
    (sim, truth), config = ctx.sbc, ctx.config
    k = min(nuts_stars, len(sim))
    runs = {
        "importance": ctx.catalogue_draws(
            sim, f"{folder}/importance", config.catalogue_settings("importance"), anchors
        ),
        "svi": ctx.svi_draws(sim, f"{folder}/svi.npz", config.seed + 2, anchors),
        "nuts": ctx.catalogue_draws(
            sim.take(np.arange(k)),
            f"{folder}/nuts",
            config.catalogue_settings("nuts"),
            None if anchors is None else anchors[:k],
        ),
    }
    out, ranks_out = {}, {}
    for method, run in runs.items():
        per_label, ranks_out[method] = rank_tests(run["draws"], truth, config.sbc_ranks)
        out[method] = {"n": len(run["draws"]), "labels": per_label, "seconds": run["seconds"]}
    out["arrays"] = {
        "ranks": ranks_out,
        "num_ranks": config.sbc_ranks,
        "importance_medians": np.nanmedian(runs["importance"]["draws"], axis=1),
    }
    return out


def rank_tests(draws, truth, num_ranks):
    """Per parameter: the SBC ranks of ``truth`` among ``draws`` [n, S, 5] (stars with at least
    ``num_ranks`` finite draws) and their uniformity test."""
    tests, ranks_of = {}, {}
    for i, name in enumerate(LABEL_INPUTS):
        ranks = np.array(
            [
                sbc_ranks(d[np.isfinite(d)][None], t[None], num_ranks)[0]
                for d, t in zip(draws[:, :, i], truth[: len(draws), i], strict=True)
                if np.isfinite(d).sum() >= num_ranks
            ]
        )
        tests[name] = {"n": len(ranks), **rank_uniformity(ranks, num_ranks)}
        ranks_of[name] = ranks
    return tests, ranks_of


def first_computed(section, name=NAME) -> dict:
    return {f"{name} {method}": section[method]["seconds"] for method in METHODS}


def markdown(results) -> list[str]:
    rows, failures = sbc_rows(results[NAME])
    return [
        "## 3. Simulation-based calibration",
        "",
        f"Chi-square test of uniform ranks (10 bins); p-values per parameter (pass: p > {SBC_ALPHA}).",
        "",
        *table(["method", "stars", *LABEL_INPUTS], rows),
        "![SBC](figures/sbc.png)",
        "",
        *(["Shape of the failing rank histograms:", "", *failures, ""] if failures else []),
    ]


def sbc_rows(section):
    """Table rows (method, stars, p per parameter) and rank shapes of the failing tests."""
    rows, failures = [], []
    for method in (m for m in section if m != "arrays"):
        labels = section[method]["labels"]
        rows.append(
            [method, section[method]["n"]] + [f"{labels[n]['p_value']:.3g}" for n in LABEL_INPUTS]
        )
        failures += [
            f"- {method} {name}: {_rank_shape(r['counts'])}"
            for name, r in labels.items()
            if r["p_value"] <= SBC_ALPHA
        ]
    return rows, failures


def failed_tests(section) -> list[str]:
    """'method label (p=...)' of every failing uniformity test."""
    return [
        f"{method} {name} (p={r['p_value']:.2g})"
        for method, result in section.items()
        if method != "arrays"
        for name, r in result["labels"].items()
        if r["p_value"] <= SBC_ALPHA
    ]


def _rank_shape(counts):
    """What a rank histogram's departure from uniform says about the posteriors."""
    n, k = sum(counts), len(counts)
    outer = (counts[0] + counts[-1]) / n
    low_minus_high = (sum(counts[: k // 2]) - sum(counts[k - k // 2 :])) / n
    expected, spread = 2 / k, 2 * (2 / k * (1 - 2 / k) / n) ** 0.5  # two binomial sd
    words = []
    if outer > expected + spread:
        words.append(f"outer bins hold {outer:.0%} of ranks (uniform: {expected:.0%}): too narrow")
    elif outer < expected - spread:
        words.append(f"outer bins hold {outer:.0%} of ranks (uniform: {expected:.0%}): too wide")
    if abs(low_minus_high) > 2 / n**0.5:
        side = "below" if low_minus_high > 0 else "above"
        words.append(f"posteriors sit {side} the truth more often than not ({low_minus_high:+.0%})")
    return "; ".join(words) or "no clear width or bias pattern"


def rank_histograms(section):
    """SBC rank histograms per method and parameter."""
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


FIGURES = {"sbc": lambda results: rank_histograms(results[NAME])}
