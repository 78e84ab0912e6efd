"""6. Stellar loci: colours emulated at each test star's APOGEE labels and extinction
against its observed colours."""

import jax
import numpy as np
from report_context import timed

from bayesfm.common.metrics import residual_stats
from bayesfm.tokens.labels import LABEL_INPUTS
from sections.shared import panels, table

NAME = "loci"
USES = ()
PAIRS = (("bp_rp", "j_k"), ("j_h", "j_k"), ("bp_rp", "g_k"))


def compute(ctx, results) -> dict:
    return timed("loci", _compute, ctx.setup, ctx.test)


def _compute(setup, test) -> dict:
    colours = sorted({c for pair in PAIRS for c in pair})
    index = np.array([setup.emulator.outputs.index(c) for c in colours])
    x = test.values[:, test.index(LABEL_INPUTS)]
    usable = np.isfinite(x).all(axis=1)
    emulate = jax.jit(jax.vmap(setup.emulator.emulate))
    emulated = np.full((len(test), len(colours)), np.nan)
    emulated[usable] = np.asarray(emulate(x[usable])[0])[:, index]
    observed = test.values[:, test.index(colours)]
    differences = {c: residual_stats(emulated[:, i], observed[:, i]) for i, c in enumerate(colours)}
    return {
        "colours": colours,
        "pairs": [list(p) for p in PAIRS],
        "emulated_minus_observed": differences,
        "arrays": {"emulated": emulated, "observed": observed},
    }


def markdown(results) -> list[str]:
    rows = [
        [c, f"{s['robust_sigma']:.3f}", f"{s['bias']:+.3f}", s["n"]]
        for c, s in results[NAME]["emulated_minus_observed"].items()
    ]
    return [
        "## 6. Stellar loci",
        "",
        "Colours emulated at each test star's APOGEE labels and a_k minus its observed colours.",
        "",
        *table(["colour", "robust sigma [mag]", "bias [mag]", "n"], rows),
        "![loci](figures/loci.png)",
        "",
    ]


def loci(results):
    """Colour-colour loci: observed vs emulated at the APOGEE labels and extinction."""
    section = results[NAME]
    colours, arrays = section["colours"], section["arrays"]
    figure, axes = panels(len(section["pairs"]), height=3.4)
    for ax, (cx, cy) in zip(axes, section["pairs"], strict=True):
        i, j = colours.index(cx), colours.index(cy)
        for key, colour in (("observed", "0.5"), ("emulated", "C3")):
            ax.scatter(arrays[key][:, i], arrays[key][:, j], s=2, alpha=0.4, c=colour, label=key)
        ax.set(xlabel=cx, ylabel=cy)
    axes[0].legend(markerscale=5)
    return figure


FIGURES = {"loci": loci}
