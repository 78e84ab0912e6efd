"""Fit a model's extinction law (``bayesfm.model.extinction_law``) on training stars."""

from dataclasses import replace

import numpy as np

from bayesfm.model.a_k_scale import calibrate_scale
from bayesfm.model.emulator import make_emulator
from bayesfm.model.extinction_fit import fit_free_extinction
from bayesfm.model.extinction_law import ExtinctionLaw, fit_response
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["fit_extinction_law"]


def fit_extinction_law(
    model: FoundationModel,
    stars: StarTokens,
    cleaned_a_k,
    transformer_a_k: float,
    response_stars: int = 20000,
    calibration_stars: int = 5000,
    seed: int = 0,
    progress: bool = False,
) -> ExtinctionLaw:
    """The law for ``model`` queried at a_k = ``transformer_a_k``.

    Args:
        model: The foundation model (its own a_k response is not used).
        stars: Training stars with APOGEE labels and observed tokens.
        cleaned_a_k: Their A_K on the transformer's a_k scale [N] [mag] (the cleaned
            values its training fitted; NaN: none).
        transformer_a_k: The reference a_k context, one its training produced.
        response_stars: Random stars (with four labels and a cleaned A_K) the response is
            fitted on.
        calibration_stars: Of those, the ones with ak_targ whose A_K the law then fits to put
            it on ak_targ's scale.
        seed: Chooses the stars.
    """
    raw = make_emulator(model, extinction_law=False)
    labels = stars.values[:, stars.index(LABEL_INPUTS[:4])]
    observed = stars.values[:, stars.index(raw.outputs)]
    errors = stars.errors[:, stars.index(raw.outputs)]
    ak_targ = stars.column("a_k")[0]
    usable = np.isfinite(labels).all(axis=1) & np.isfinite(cleaned_a_k)
    rows = np.random.default_rng(seed).permutation(np.flatnonzero(usable))[:response_stars]
    reference = np.column_stack([labels[rows], np.full(len(rows), transformer_a_k)])
    mean, sigma = raw.batch(reference.astype(np.float32))
    flux = set(model.vocabulary.names_in_group("xp_bp", "xp_rp"))
    is_flux = np.array([name in flux for name in raw.outputs])
    response = fit_response(
        cleaned_a_k[rows] - transformer_a_k, mean, sigma, observed[rows], errors[rows], is_flux
    )
    on_own_scale = ExtinctionLaw(
        transformer_a_k,
        transformer_a_k,
        1.0,
        dict(zip(raw.outputs, response.tolist(), strict=True)),
    )
    emulator = make_emulator(
        replace(model, info={**model.info, "extinction_law": on_own_scale.to_info()})
    )
    calibration = rows[np.isfinite(ak_targ[rows])][:calibration_stars]
    fitted = fit_free_extinction(
        emulator, labels[calibration], observed[calibration], errors[calibration], progress
    )
    slope, intercept = calibrate_scale(fitted.a_k, fitted.a_k_err, ak_targ[calibration])
    return ExtinctionLaw(
        transformer_a_k=transformer_a_k,
        reference_a_k=intercept + slope * transformer_a_k,
        a_k_scale=slope,
        response={name: r / slope for name, r in on_own_scale.response.items()},
    )
