"""Simulated catalogues: real stars' gaps, errors and noise correlations, with labels drawn
from the prior and tokens drawn from the model's own likelihood (for simulation-based
calibration and for testing a pipeline end to end)."""

import numpy as np

from bayesfm.bayes.simulation import simulate_stars
from bayesfm.infer.setup import prepare_stars
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["simulated_catalogue"]


def simulated_catalogue(setup, templates: StarTokens, key) -> tuple[StarTokens, np.ndarray]:
    """Template stars with emulator-simulated outputs and prior draws as their labels.

    Args:
        setup: A ``StarInference``.
        templates: Real stars; those without usable tokens are left out.
        key: PRNG key.

    Returns:
        (the simulated stars, their true labels [n, 5] physical). The stars keep the
        templates' source ids, errors and missing tokens; their label columns (added where
        the templates lack them) hold the truth with zero error, like a perfectly measured
        survey label.
    """
    prepared = prepare_stars(setup, templates)
    templates = templates.take(prepared.rows)
    truth, simulated = simulate_stars(setup, prepared.data, key)
    added = [name for name in LABEL_INPUTS if name not in templates.names]
    stars = StarTokens(
        templates.source_id,
        (*templates.names, *added),
        *(_with_blank_columns(a, len(added)) for a in (templates.values, templates.errors)),
    )
    outputs = stars.index(setup.emulator.outputs)
    stars.values[:, outputs] = np.where(simulated.mask, simulated.values, np.nan)
    labels = stars.index(LABEL_INPUTS)
    stars.values[:, labels], stars.errors[:, labels] = truth, 0.0
    return stars, truth


def _with_blank_columns(array, k):
    """``array`` [n, t] followed by ``k`` NaN columns, in its own dtype."""
    return np.concatenate([array, np.full((len(array), k), np.nan, array.dtype)], axis=1)
