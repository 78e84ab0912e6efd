"""Cleaned extinctions put on the scale of the label they clean.

A refit of A_K through the emulator (``bayesfm.model.extinction_fit``) does not fix its
scale: an emulator trained on the noisy ak_targ has a diluted extinction response
(regression dilution), so the A_K it fits are stretched, and an emulator trained on those
learns a response diluted again. ``anchor_to_label`` removes that freedom. ak_targ is an
unbiased measurement of the true A_K (its error is independent of it), so within each
stellar class the regression of ak_targ on the cleaned A_K must have slope 1 and
intercept 0; the cleaned values are mapped linearly until it has.
"""

from typing import NamedTuple

import numpy as np

__all__ = ["ExtinctionFit", "anchor_to_label", "ANCHOR_CLASSES"]

# classes anchored separately: giant/dwarf (logg 3.5) x teff [K] below/between/above the edges
ANCHOR_CLASSES = {"logg": (3.5,), "teff": (4700.0, 5500.0)}


class ExtinctionFit(NamedTuple):
    """Fitted A_K [N] and its 1-sigma uncertainty [N] [mag]; NaN where a star had no tokens."""

    a_k: np.ndarray
    a_k_err: np.ndarray


def anchor_to_label(fit: ExtinctionFit, labels, label_a_k, min_stars: int = 50) -> ExtinctionFit:
    """``fit`` mapped, per ``ANCHOR_CLASSES`` class, by the line a + b A_K that regresses the
    raw label on the fitted values (least squares over the class's stars with both), so
    that afterwards the label is unbiased for the cleaned A_K: slope 1, intercept 0.
    Uncertainties scale by |b|. A class with fewer than ``min_stars`` such stars is left
    as fitted.

    Args:
        fit: Fitted A_K and uncertainties [N] [mag].
        labels: teff [K], logg, fe_h, alpha_m [N, 4] (the classes' teff and logg).
        label_a_k: The raw a_k label [N] [mag] (NaN: none).
    """
    a_k, a_k_err = fit.a_k.copy(), fit.a_k_err.copy()
    classes = _anchor_class(np.asarray(labels))
    both = np.isfinite(a_k) & np.isfinite(label_a_k)
    for c in np.unique(classes):
        members, used = classes == c, (classes == c) & both
        if used.sum() < min_stars:
            continue
        slope, intercept = np.polyfit(a_k[used], label_a_k[used], 1)
        a_k[members] = intercept + slope * a_k[members]
        a_k_err[members] *= abs(slope)
    return ExtinctionFit(a_k, a_k_err)


def _anchor_class(labels) -> np.ndarray:
    """Each star's class index [N] from its teff and logg (``ANCHOR_CLASSES``)."""
    giant_dwarf = np.digitize(labels[:, 1], ANCHOR_CLASSES["logg"])
    by_teff = np.digitize(labels[:, 0], ANCHOR_CLASSES["teff"])
    return giant_dwarf * (len(ANCHOR_CLASSES["teff"]) + 1) + by_teff
