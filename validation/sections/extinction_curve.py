"""4. Extinction curve: the emulator's d(-2.5 log10 flux)/d a_k per stellar type against
Fitzpatrick (2019).

Flux tokens are divided by the star's median RP flux, so the emulator's curve is
(A_lambda - A_norm) / A_K: it is compared with F19 through a linear fit
emulator = s * A_lambda/A_55 + c, whose slope s is A_55 / A_K.
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from report_context import timed

from bayesfm.model.emulator import extinction_law_of
from bayesfm.model.fitzpatrick import fit_to_fitzpatrick, fitzpatrick_on_tokens, token_centres_nm
from sections.shared import table

NAME = "extinction_curve"
USES = ()
STELLAR_TYPES = {  # name -> teff, logg, fe_h, alpha_m
    "K giant": (4300, 2.0, 0.0, 0.05),
    "red clump": (4800, 2.5, 0.0, 0.0),
    "G dwarf": (5800, 4.4, 0.0, 0.0),
    "F dwarf": (6400, 4.2, -0.2, 0.0),
    "K dwarf": (4600, 4.6, 0.1, 0.0),
}


def compute(ctx, results) -> dict:
    return timed("extinction curve", _compute, ctx.setup)


def _compute(setup) -> dict:
    names = [n for n in setup.emulator.outputs if n.startswith("xp_")]
    index = np.array([setup.emulator.outputs.index(n) for n in names])
    centres = token_centres_nm(names)
    f19 = fitzpatrick_on_tokens(centres, setup.model.vocabulary.binning.width_nm)

    def magnitudes(a_k, labels):
        mean, _ = setup.emulator.emulate(jnp.append(jnp.asarray(labels), a_k))
        return -2.5 * jnp.log10(mean[index])

    slope_of = jax.jacfwd(magnitudes)
    out = {
        "extinction_law": extinction_law_of(setup.model) is not None,
        "wavelength_nm": centres.tolist(),
        "fitzpatrick2019_A_over_A55": f19.tolist(),
        "types": {},
    }
    for name, labels in STELLAR_TYPES.items():
        curve = np.asarray(slope_of(0.05, jnp.asarray(labels, jnp.float32)))
        s, c = fit_to_fitzpatrick(curve, f19)
        fitted = s * f19 + c
        out["types"][name] = {
            "curve": curve.tolist(),
            "A55_over_AK": s,
            "offset": c,
            "rms_residual_over_A55": float(np.sqrt(np.mean((curve - fitted) ** 2)) / s),
            "correlation": float(np.corrcoef(curve, f19)[0, 1]),
        }
    return out


def markdown(results) -> list[str]:
    rows = [
        [
            name,
            f"{r['A55_over_AK']:.2f}",
            f"{r['correlation']:.3f}",
            f"{r['rms_residual_over_A55']:.3f}",
        ]
        for name, r in results[NAME]["types"].items()
    ]
    law = (
        "The emulator applies one extinction law to every star (`bayesfm.model.extinction_law`, "
        "its response fitted on the train split and put on ak_targ's scale), so the curve is "
        "the same for every type by construction; `python validation/extinction_scale.py` "
        "measures A(55)/A(K) per type from the data alone."
        if results[NAME].get("extinction_law")
        else "The emulator's own response to its A_K input (no extinction law), on ak_targ's "
        "scale where the model records an `a_k_scale`."
    )
    return [
        "## 4. Extinction curve",
        "",
        "d(-2.5 log10 flux token)/d a_k from the emulator at a_k = 0.05, fitted as "
        "s x A(lambda)/A(55) [Fitzpatrick 2019, R55 = 3.02] + c (tokens are normalised by "
        "the RP flux, hence c); s is the learned A(55)/A(K). " + law,
        "",
        *table(["type", "A55/AK", "correlation with F19", "RMS residual / A55"], rows),
        "![extinction](figures/extinction.png)",
        "",
    ]


def extinction(results):
    """The emulator's extinction curve per stellar type vs Fitzpatrick (2019)."""
    section = results[NAME]
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


FIGURES = {"extinction": extinction}
