"""2. NUTS vs importance sampling vs SVI on the same held-out stars: accuracy, coverage and
star-by-star agreement with NUTS."""

import numpy as np
from report_context import timed

from bayesfm.common.metrics import residual_stats
from bayesfm.tokens.labels import LABEL_INPUTS
from sections.shared import CALIBRATED, calibration, reference, table

NAME = "methods"
USES = ()


def compute(ctx, results) -> dict:
    check, runs = ctx.check, {}
    for method in ("nuts", "importance"):
        settings = ctx.config.catalogue_settings(method)
        folder = f"check_{method}"
        name = f"{method} on {len(check)} stars"
        runs[method] = timed(name, ctx.catalogue_draws, check, folder, settings)
    runs["svi"] = timed(
        "svi on check stars", ctx.svi_draws, check, "check_svi.npz", ctx.config.seed
    )
    out = {}
    for method, run in runs.items():
        per_label = {}
        for i, name in enumerate(LABEL_INPUTS):
            truth, error = reference(check, name)
            cal = calibration(run["draws"][..., i], truth, error)
            per_label[name] = {
                "coverage": cal["coverage"],
                "z_sd": cal["z_sd"],
                **residual_stats(np.nanmedian(run["draws"][..., i], axis=1), truth),
            }
        out[method] = {"labels": per_label, "seconds": run["seconds"]}
        if "table" in run:
            out[method]["ok_fraction"] = float(run["table"]["ok"].mean())
        if method != "nuts":
            out[method]["vs_nuts"] = agreement_with(run["draws"], runs["nuts"]["draws"])
    return out


def agreement_with(draws, reference_draws) -> dict:
    """Per label, medians over stars of |median - reference median| / reference sd and of
    sd / reference sd (draws [n, S, 5])."""
    out = {}
    for i, name in enumerate(LABEL_INPUTS):
        ref_median = np.nanmedian(reference_draws[..., i], axis=1)
        ref_sd = np.nanstd(reference_draws[..., i], axis=1)
        shift = np.abs(np.nanmedian(draws[..., i], axis=1) - ref_median) / ref_sd
        width = np.nanstd(draws[..., i], axis=1) / ref_sd
        out[name] = {
            "median_abs_shift_in_reference_sd": float(np.nanmedian(shift)),
            "median_width_ratio": float(np.nanmedian(width)),
        }
    return out


def first_computed(section) -> dict:
    return {f"{method} on check stars": result["seconds"] for method, result in section.items()}


def markdown(results) -> list[str]:
    section = results[NAME]
    rows = []
    for method, result in section.items():
        for name in CALIBRATED:
            r = result["labels"][name]
            rows.append(
                [
                    method,
                    name,
                    f"{r['robust_sigma']:.3g}",
                    f"{r['coverage']['0.68']:.3f}",
                    f"{r['coverage']['0.95']:.3f}",
                    f"{result.get('ok_fraction', float('nan')):.2f}",
                ]
            )
    agreement = [
        [method, name]
        + [
            f"{result['vs_nuts'][name]['median_abs_shift_in_reference_sd']:.2f}",
            f"{result['vs_nuts'][name]['median_width_ratio']:.2f}",
        ]
        for method, result in section.items()
        if "vs_nuts" in result
        for name in LABEL_INPUTS
    ]
    return [
        "## 2. NUTS vs importance sampling vs SVI on the same held-out stars",
        "",
        *table(["method", "label", "robust sigma", "68%", "95%", "passed checks"], rows),
        "Agreement with NUTS, star by star (medians over all the stars):",
        "",
        *table(
            ["method", "label", "abs(median - NUTS median) / NUTS sd", "sd / NUTS sd"], agreement
        ),
    ]
