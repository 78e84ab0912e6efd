"""The SBC's controlled test: the same simulated stars and noise draws, inferred with the
likelihood's emulator sigma at each star's true labels (the noise they were simulated with)."""

from report_context import timed

from bayesfm.tokens.labels import LABEL_INPUTS
from sections.sbc import first_computed as sbc_first_computed
from sections.sbc import rank_histograms, sbc_rows, sbc_runs
from sections.shared import table

NAME = "sbc_truth_sigma"
USES = ()


def compute(ctx, results) -> dict:
    nuts_stars = ctx.config.sbc_truth_sigma_nuts_stars
    truth = ctx.sbc[1]
    return timed("sbc, sigma at true labels", sbc_runs, ctx, NAME, nuts_stars, truth)


def first_computed(section) -> dict:
    return sbc_first_computed(section, NAME)


def markdown(results) -> list[str]:
    rows, failures = sbc_rows(results[NAME])
    return [
        "### Controlled test: the likelihood's sigma at the true labels",
        "",
        "The same simulated stars, with the same noise draws and sampler settings, inferred with "
        "the emulator sigma taken at each star's true labels (`anchors=` of `run_catalogue`), "
        "so that the likelihood's noise is the noise the stars were simulated with:",
        "",
        *table(["method", "stars", *LABEL_INPUTS], rows),
        "![SBC, sigma at true labels](figures/sbc_truth_sigma.png)",
        "",
        *(
            ["Shape of the failing rank histograms:", "", *failures, ""]
            if failures
            else ["Every parameter passes for every method.", ""]
        ),
    ]


FIGURES = {"sbc_truth_sigma": lambda results: rank_histograms(results[NAME])}
