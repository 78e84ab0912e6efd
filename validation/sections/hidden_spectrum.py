"""5. Unobserved spectra: hide the blue flux tokens, infer, and check the posterior
predictive of the hidden tokens against their observed values."""

import jax
import matplotlib.pyplot as plt
import numpy as np
from report_context import timed
from scipy import stats

from bayesfm.infer.calibration import central_coverage
from bayesfm.tokens.star_tokens import StarTokens
from sections.shared import table

NAME = "hidden_spectrum"
USES = ()


def compute(ctx, results) -> dict:
    return timed("hidden spectrum", _compute, ctx)


def _compute(ctx) -> dict:
    """Hide the flux tokens blueward of ``hidden_below_nm``, infer, predict them, compare."""
    setup, config = ctx.setup, ctx.config
    n = min(config.hidden_stars, len(ctx.test))
    stars = ctx.test.take(np.arange(n))
    hidden = [
        name
        for name in setup.emulator.outputs
        if name.startswith("xp_") and float(name.split("_")[1]) < config.hidden_below_nm
    ]
    columns = stars.index(hidden)
    values = stars.values.copy()
    true_values, true_errors = values[:, columns].copy(), stars.errors[:, columns].copy()
    values[:, columns] = np.nan
    masked = StarTokens(stars.source_id, stars.names, values, stars.errors)
    result = ctx.catalogue_draws(masked, "hidden", config.catalogue_settings("importance"))
    draws = result["draws"][:, :: max(1, result["draws"].shape[1] // 200)]
    out_index = np.array([setup.emulator.outputs.index(h) for h in hidden])
    scale_factor = np.asarray(setup.noise.total_scale)[out_index]
    emulate = jax.jit(jax.vmap(jax.vmap(setup.emulator.emulate)))
    mean, sigma = (np.asarray(a)[..., out_index] for a in emulate(np.nan_to_num(draws)))
    # predictive of the observed value: emulator draw + (emulator and observational) noise
    scale = scale_factor * np.sqrt(sigma**2 + true_errors[:, None] ** 2)
    pit = np.nanmean(stats.norm.cdf((true_values[:, None] - mean) / scale), axis=1)
    pit = np.where(np.isfinite(draws[:, :, 0]).all(axis=1)[:, None], pit, np.nan)
    per_token = {
        name: {
            "coverage": central_coverage(pit[:, j]),
            "median_relative_error": float(
                np.nanmedian(np.abs(np.median(mean[:, :, j], axis=1) / true_values[:, j] - 1))
            ),
        }
        for j, name in enumerate(hidden)
    }
    return {
        "hidden_tokens": hidden,
        "n": n,
        "coverage_all": central_coverage(pit.ravel()),
        "tokens": per_token,
        "seconds": result["seconds"],
    }


def first_computed(section) -> dict:
    return {"hidden spectrum": section["seconds"]}


def markdown(results) -> list[str]:
    section = results[NAME]
    rows = [
        [
            name,
            f"{r['coverage']['0.68']:.3f}",
            f"{r['coverage']['0.95']:.3f}",
            f"{r['median_relative_error']:.3f}",
        ]
        for name, r in section["tokens"].items()
    ]
    all_ = section["coverage_all"]
    return [
        "## 5. Unobserved spectra",
        "",
        f"{section['n']} test stars with flux tokens {section['hidden_tokens']} hidden; "
        f"posterior-predictive coverage of the true (observed) values over all hidden tokens: "
        f"68% -> {all_['0.68']:.3f}, 95% -> {all_['0.95']:.3f}.",
        "",
        *table(["token", "68%", "95%", "median |relative error|"], rows),
        "![hidden](figures/hidden.png)",
        "",
    ]


def hidden(results):
    """Coverage of the hidden flux tokens by the posterior predictive."""
    section = results[NAME]
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


FIGURES = {"hidden": hidden}
