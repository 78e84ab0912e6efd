"""ak_targ's scale for the emulator's A_K input.

Training with latent extinction gives each training star a cleaned a_k, and the
transformer's a_k token lives on that scale, which is not ak_targ's: the cleaned values
absorb misfits that extinction does not cause and come out stretched. A model that records
an ``a_k_scale`` has emulators whose A_K input, priors and posteriors are on ak_targ's
scale (an unbiased measurement of A_K):

    A_K = intercept + slope x a_k   (a_k: the transformer's token).

``calibrate_scale`` measures the line: ak_targ regressed on A_K values the model gives
(validation/fit_a_k_scale.py: the posterior medians of validation stars).
"""

from dataclasses import dataclass

import numpy as np

from bayesfm.common.errors import DataError

__all__ = ["AKScale", "calibrate_scale"]


@dataclass(frozen=True)
class AKScale:
    """A_K [mag, ak_targ's scale] = intercept + slope x the transformer's a_k."""

    slope: float
    intercept: float

    def true_a_k(self, transformer_a_k):
        return self.intercept + self.slope * transformer_a_k

    def transformer_a_k(self, true_a_k):
        return (true_a_k - self.intercept) / self.slope

    def then(self, recalibration: "AKScale") -> "AKScale":
        """This scale followed by ``recalibration``, a line from this scale's A_K to
        ak_targ's (a refit of a model that records a scale already)."""
        return AKScale(
            recalibration.slope * self.slope,
            recalibration.intercept + recalibration.slope * self.intercept,
        )

    def to_info(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_info(cls, info: dict) -> "AKScale":
        try:
            scale = cls(float(info["slope"]), float(info["intercept"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"the model's a_k_scale record is malformed ({error})") from error
        if not (np.isfinite(scale.slope) and scale.slope > 0 and np.isfinite(scale.intercept)):
            raise DataError(f"the model's a_k_scale record {info} needs a finite slope > 0")
        return scale


def calibrate_scale(fitted_a_k, fitted_err, ak_targ):
    """(slope b, intercept a) with ak_targ = a + b A_K over stars with both, b corrected
    for the regression dilution that ``fitted_a_k``'s own noise (``fitted_err``; None: the
    fitted values are estimates, e.g. posterior medians, already shrunk) causes."""
    fitted_a_k, ak_targ = np.asarray(fitted_a_k, float), np.asarray(ak_targ, float)
    fitted_err = np.zeros_like(fitted_a_k) if fitted_err is None else np.asarray(fitted_err)
    both = np.isfinite(fitted_a_k) & np.isfinite(ak_targ) & np.isfinite(fitted_err)
    x, y = fitted_a_k[both], ak_targ[both]
    if both.sum() < 50:
        raise DataError(f"only {both.sum()} stars have both a fitted A_K and ak_targ; need 50")
    reliability = 1.0 - np.mean(fitted_err[both] ** 2) / np.var(x)
    slope = np.cov(x, y)[0, 1] / np.var(x, ddof=1) / reliability
    return float(slope), float(np.mean(y) - slope * np.mean(x))
