"""Where and why coverage falls short: do the held-out stars' tokens reject their APOGEE
labels (an emulator error) as often as the SBC stars reject their true labels?"""

import numpy as np
from scipy import stats

from bayesfm.infer.misfit import label_misfit
from bayesfm.tokens.labels import LABEL_INPUTS
from sections.shared import BINS, CALIBRATED, bin_members, reference, table

NAME = "misfit"
USES = ("heldout", "sbc")  # their posterior medians
CHI2_95 = float(stats.chi2.ppf(0.95, len(LABEL_INPUTS)))


def compute(ctx, results) -> dict:
    apogee = np.stack([reference(ctx.test, name)[0] for name in LABEL_INPUTS], axis=1)
    medians = results["heldout"]["arrays"]["medians"]
    real = label_misfit(ctx.setup, ctx.test, medians, apogee)
    sim, truth = ctx.sbc
    sbc_medians = results["sbc"]["arrays"]["importance_medians"]
    out = {
        "threshold": CHI2_95,
        "simulated": _summary(label_misfit(ctx.setup, sim, sbc_medians, truth)),
        "test": _summary(real),
        "by_bin": {quantity: [] for quantity in BINS},
    }
    for quantity, edges, sel in bin_members(ctx.test, ctx.snr):
        out["by_bin"][quantity].append({"bin": edges, **_summary(real[sel])})
    return out


def _summary(misfits) -> dict:
    d = misfits[np.isfinite(misfits)]
    return {"n": len(d), "median": float(np.median(d)), "above": float(np.mean(d > CHI2_95))}


def markdown(results) -> list[str]:
    section, by_bin = results[NAME], results["heldout"]["by_bin"]
    sim, test = section["simulated"], section["test"]
    rows = []
    for quantity, bins in section["by_bin"].items():
        for b in bins:
            coverage = [
                next(c for c in by_bin[name][quantity] if c["bin"] == b["bin"])["coverage_68"]
                for name in CALIBRATED
            ]
            rows.append(
                [
                    f"{quantity} [{b['bin'][0]:g}, {b['bin'][1]:g})",
                    b["n"],
                    f"{b['median']:.1f}",
                    f"{b['above']:.2f}",
                    " / ".join(f"{c:.2f}" for c in coverage),
                ]
            )
    return [
        "### Where and why coverage falls short",
        "",
        "Misfit = 2 [log L(posterior median) - log L(APOGEE labels)]: how strongly a star's own "
        "tokens, through the emulator and the noise model, prefer the posterior median to "
        f"APOGEE's labels. Above {section['threshold']:.1f} (the 95% point of chi-square with "
        "5 degrees of freedom) the data reject APOGEE's labels. With a correct emulator this "
        f"happens for {sim['above']:.0%} of stars (the SBC stars, simulated through the "
        f"emulator and inferred the same way: {sim['n']} stars, median misfit "
        f"{sim['median']:.1f}); on the test stars for {test['above']:.0%} ({test['n']} stars "
        f"with all five APOGEE labels, median {test['median']:.1f}). Where the misfit is high "
        "the emulator does not reproduce the observed XP tokens at APOGEE's labels, so no "
        "sampler can put APOGEE's labels inside the intervals: the bins that miss coverage "
        "are the bins where the emulator is wrong. APOGEE's own label errors, not folded in "
        "here, add to the misfit a little.",
        "",
        *table(
            ["bin", "n", "median misfit", "fraction rejecting APOGEE", "68% cov. teff/logg/fe_h"],
            rows,
        ),
    ]
