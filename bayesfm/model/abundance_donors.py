"""Stand-in abundances for stars the survey gives none, so that the emulator learns them too.

APOGEE gives no [Fe/H] or [alpha/M] for stars hotter than ~7,000 K (a tenth of the library).
An emulator task that needs all four labels never sees those stars, and a label prior fitted
on complete stars has no mass there: their posteriors pile up at the prior's hot edge
(6,500 K for a 10,000 K star). Their abundances are treated as latent with a population
prior instead: wherever such a star needs them (the emulator task, the label prior) it gets
the (fe_h, alpha_m) of a random **donor**, a train star with both labels among the hottest
ones. The emulator then learns the spectrum averaged over those abundances, and a hot star's
posterior abundances follow the prior, as the survey leaves them unconstrained. Measured as
training stage 14 (docs/model_card.md): not shipped.
"""

from typing import NamedTuple

import numpy as np

from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["AbundanceDonors", "DONOR_TEFF_QUANTILE"]

DONOR_TEFF_QUANTILE = 0.9  # donors: complete stars hotter than this quantile of their teff
_FILLED = [LABEL_INPUTS.index("fe_h"), LABEL_INPUTS.index("alpha_m")]
_KEPT = [i for i in range(len(LABEL_INPUTS)) if i not in _FILLED]


class AbundanceDonors(NamedTuple):
    """The donors' (fe_h, alpha_m) [D, 2], in the units of the labels they fill."""

    abundances: np.ndarray

    @classmethod
    def from_labels(cls, labels, quantile: float = DONOR_TEFF_QUANTILE) -> "AbundanceDonors":
        """Donors among ``labels`` [N, 5] (physical, ``LABEL_INPUTS`` order; NaN: none): the
        stars with all five whose teff is above ``quantile`` of theirs."""
        labels = np.asarray(labels, float)
        complete = labels[np.isfinite(labels).all(axis=1)]
        hot = complete[:, 0] >= np.quantile(complete[:, 0], quantile)
        return cls(complete[hot][:, _FILLED])

    @classmethod
    def from_tokens(cls, tokens: StarTokens, quantile=DONOR_TEFF_QUANTILE) -> "AbundanceDonors":
        """Donors among the stars of ``tokens`` (``from_labels``)."""
        return cls.from_labels(tokens.values[:, tokens.index(LABEL_INPUTS)], quantile)

    def normalised(self, scaling) -> "AbundanceDonors":
        """The donors in normalised units (``scaling`` of fe_h and alpha_m)."""
        return AbundanceDonors(np.asarray(scaling.normalise(self.abundances), np.float32))

    def fillable(self, labels) -> np.ndarray:
        """Boolean [N]: stars whose only missing labels [N, 5] are fe_h and alpha_m."""
        known = np.isfinite(np.asarray(labels))
        return known[:, _KEPT].all(axis=1) & ~known[:, _FILLED].all(axis=1)

    def fill(self, rng, labels, rows=None) -> np.ndarray:
        """A copy of ``labels`` [N, 5] whose fillable stars (only among ``rows``, boolean [N],
        if given) have their missing abundances from a random donor each."""
        labels = np.array(labels)
        target = self.fillable(labels) if rows is None else self.fillable(labels) & rows
        picks = self.abundances[rng.integers(len(self.abundances), size=len(labels))]
        part = labels[:, _FILLED]
        missing = target[:, None] & ~np.isfinite(part)
        labels[:, _FILLED] = np.where(missing, picks, part)
        return labels

    def typical(self) -> np.ndarray:
        """The donors' median (fe_h, alpha_m) [2]: one value where a single one is needed."""
        return np.median(self.abundances, axis=0)

    def with_typical(self, tokens: StarTokens) -> StarTokens:
        """``tokens`` with the typical abundances (error 0) for the fillable stars."""
        fillable = self.fillable(tokens.values[:, tokens.index(LABEL_INPUTS)])
        for name, value in zip(("fe_h", "alpha_m"), self.typical(), strict=True):
            column, error = (c.copy() for c in tokens.column(name))
            missing = fillable & ~np.isfinite(column)
            column[missing], error[missing] = value, 0.0
            tokens = tokens.with_column(name, column, error)
        return tokens
