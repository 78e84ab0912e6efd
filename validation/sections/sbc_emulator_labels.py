"""The SBC on the emulator's own labels: the same simulated stars and noise draws, with no
label scatter on either side, so that the ranks test the sampler and the likelihood alone.

The SBC of section 3 compares on the survey's scale: its true labels and the posterior's
draws each carry an independent label scatter (``NoiseModel.scatter_labels``), whose tails
are heavy (alpha_m's is a Cauchy). One draw of that scatter per true label can decide a
rank by itself, so the section also redraws it (``REDRAWS`` times, for the truths and the
draws alike) and reports the p-values it then gives.
"""

import dataclasses

import jax
import numpy as np
from report_context import timed

from bayesfm.infer.setup import prepare_stars
from bayesfm.tokens.labels import LABEL_INPUTS
from sections.sbc import rank_histograms, rank_tests
from sections.shared import SBC_ALPHA, table

NAME = "sbc_emulator_labels"
USES = ()
REDRAWS = 20


def compute(ctx, results) -> dict:
    return timed("sbc, emulator labels", _importance_ranks, ctx)


def _importance_ranks(ctx) -> dict:
    config = ctx.config
    plain = dataclasses.replace(ctx.setup, noise=ctx.setup.noise.without_label_scatter())
    sim, truth = ctx.simulated_sbc(plain)  # ctx.sbc's stars, the truths before scatter
    run = ctx.catalogue_draws(
        sim, f"{NAME}/importance", config.catalogue_settings("importance"), setup=plain
    )
    tests, ranks = rank_tests(run["draws"], truth, config.sbc_ranks)
    redrawn = _redrawn_scatter(ctx.setup.noise, sim, plain, run["draws"], truth, config)
    return {
        "importance": {"n": len(run["draws"]), "labels": tests, "seconds": run["seconds"]},
        "redrawn_scatter_p": redrawn,
        "arrays": {"ranks": {"importance": ranks}, "num_ranks": config.sbc_ranks},
    }


def _redrawn_scatter(noise, sim, plain, draws, truth, config) -> dict:
    """Per label, the sorted p-values of the survey-scale SBC with the label scatter of the
    truths and of the draws redrawn ``REDRAWS`` times."""
    level = noise.flux_noise_level(prepare_stars(plain, sim).data)
    p_values = {name: [] for name in LABEL_INPUTS}
    for k in range(REDRAWS):
        truth_key, draws_key = jax.random.split(jax.random.PRNGKey(config.seed + 100 + k))
        tests, _ = rank_tests(
            noise.scatter_labels(draws, draws_key, level[:, None]),
            noise.scatter_labels(truth, truth_key, level),
            config.sbc_ranks,
        )
        for name in LABEL_INPUTS:
            p_values[name].append(tests[name]["p_value"])
    return {name: sorted(p) for name, p in p_values.items()}


def first_computed(section) -> dict:
    return {f"{NAME} importance": section["importance"]["seconds"]}


def markdown(results) -> list[str]:
    section = results[NAME]
    labels = section["importance"]["labels"]
    redrawn = section["redrawn_scatter_p"]
    rows = [
        [
            name,
            f"{labels[name]['p_value']:.3g}",
            f"{np.median(redrawn[name]):.2g}",
            f"{sum(p <= SBC_ALPHA for p in redrawn[name])} of {len(redrawn[name])}",
        ]
        for name in LABEL_INPUTS
    ]
    return [
        "### The sampler alone: SBC on the emulator's labels",
        "",
        "The same simulated stars and noise draws, inferred by importance sampling (the "
        "catalogue's default path) with no label scatter on the truths or the draws: the "
        "ranks test the sampler and the likelihood alone. The last two columns put the "
        "survey-scale scatter back on both sides, redrawn "
        f"{len(next(iter(redrawn.values())))} times: the median p-value and how often the "
        f"test fails (p <= {SBC_ALPHA}).",
        "",
        *table(["parameter", "p (emulator labels)", "median p, scatter redrawn", "fails"], rows),
        "![SBC, emulator labels](figures/sbc_emulator_labels.png)",
        "",
    ]


FIGURES = {"sbc_emulator_labels": lambda results: rank_histograms(results[NAME])}
