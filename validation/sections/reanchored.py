"""Importance sampling repeated, each pass taking the emulator sigma at the previous pass's
posterior medians (no truth used): SBC uniformity and held-out coverage pass by pass."""

import numpy as np
from report_context import timed

from bayesfm.tokens.labels import LABEL_INPUTS
from sections.sbc import rank_tests
from sections.shared import CALIBRATED, SBC_ALPHA, calibration, reference, table

NAME = "reanchored"
USES = ()


def compute(ctx, results) -> dict:
    return timed("re-anchored importance sampling", _compute, ctx)


def _compute(ctx) -> dict:
    (sim, truth), check = ctx.sbc, ctx.check
    sbc_runs = _passes(ctx, sim, ("sbc/importance", "reanchored/sbc"))
    check_runs = _passes(ctx, check, ("check_importance", "reanchored/check"))
    return {
        "sbc": [rank_tests(run["draws"], truth, ctx.config.sbc_ranks)[0] for run in sbc_runs],
        "check": [
            {
                label: calibration(run["draws"][:, :, i], *reference(check, label))["coverage"]
                for i, label in enumerate(LABEL_INPUTS)
            }
            for run in check_runs
        ],
        "n": {"sbc": len(sim), "check": len(check)},
        "seconds": sum(run["seconds"] for run in sbc_runs[1:] + check_runs[1:]),
    }


def _passes(ctx, stars, folders) -> list:
    """The catalogue run of each pass. ``folders``: (the first pass's run, with the amortized
    anchor and shared with the report's other sections; the prefix of the later passes' runs,
    which take the sigma at the previous pass's posterior medians)."""
    (first_pass, later), runs, anchors = folders, [], None
    settings = ctx.config.catalogue_settings("importance")
    for k in range(1, ctx.config.reanchor_passes + 1):
        folder = first_pass if k == 1 else f"{later}_pass{k}"
        runs.append(ctx.catalogue_draws(stars, folder, settings, anchors))
        medians = np.nanmedian(runs[-1]["draws"], axis=1)
        anchors = np.where(np.isfinite(medians), medians, np.asarray(ctx.setup.scaling.loc)[None])
    return runs


def first_computed(section) -> dict:
    return {"re-anchored passes": section["seconds"]}


def failures(section) -> list[str]:
    """The parameters whose SBC test fails after the last re-anchoring pass."""
    return [n for n, t in section["sbc"][-1].items() if t["p_value"] <= SBC_ALPHA]


def markdown(results) -> list[str]:
    section = results[NAME]
    rows = [
        [k + 1]
        + [f"{tests[n]['p_value']:.3g}" for n in LABEL_INPUTS]
        + [f"{cov[n]['0.68']:.3f} / {cov[n]['0.95']:.3f}" for n in CALIBRATED]
        for k, (tests, cov) in enumerate(zip(section["sbc"], section["check"], strict=True))
    ]
    first, last = section["check"][0], section["check"][-1]
    failing = failures(section)
    return [
        "### Re-anchoring the sigma at the posterior medians (no truth needed)",
        "",
        "Importance sampling repeated, each pass taking the emulator sigma at the previous "
        "pass's posterior medians (pass 1: the amortized anchor, as above). SBC p-values on the "
        f"{section['n']['sbc']} SBC stars, and 68% / 95% coverage of APOGEE (errors folded in) "
        f"on the {section['n']['check']} check stars:",
        "",
        *table(
            ["pass", *(f"SBC {n}" for n in LABEL_INPUTS), *(f"{n} coverage" for n in CALIBRATED)],
            rows,
        ),
        f"After pass {len(rows)} the SBC test "
        + ("passes for every parameter" if not failing else "fails for " + ", ".join(failing))
        + "; the mean distance of the check stars' 68/95% coverage from nominal goes from "
        f"{_coverage_gap(first):.3f} (pass 1) to {_coverage_gap(last):.3f}.",
        "",
    ]


def _coverage_gap(coverage):
    """Mean |coverage - nominal| over the calibrated labels at 68% and 95%."""
    gaps = [
        abs(coverage[n][level] - float(level)) for n in CALIBRATED for level in ("0.68", "0.95")
    ]
    return sum(gaps) / len(gaps)
