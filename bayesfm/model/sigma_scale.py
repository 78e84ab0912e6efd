"""Post-hoc factors on the foundation model's predicted sigma (temperature scaling).

The transformer's sigma for a label is learned with the Gaussian NLL on noisy training
labels; on held-out stars it can come out a little too wide or too narrow. One factor per
token, fitted on the validation split for one task, makes the fraction of stars with
``|mean - truth| < sqrt((factor * sigma)^2 + truth_error^2)`` the nominal 68.3% there.
``validation/fit_sigma_scale.py`` fits the shipped factors (spectra -> labels).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.jsonio import from_json, load_json, save_json
from bayesfm.common.metrics import coverage_within

__all__ = ["SigmaScale", "fit_sigma_factor", "bisect_factor", "default_sigma_scale_path"]

NOMINAL = 0.6827  # P(|z| < 1) for a Gaussian


@dataclass(frozen=True)
class SigmaScale:
    """Factors on predicted sigma per token, for the task they were fitted on.

    Attributes:
        task: Name of the task in ``predict.TASKS`` whose context they were fitted with.
        factors: Token name -> factor.
    """

    task: str
    factors: dict

    def __post_init__(self):
        bad = {k: v for k, v in self.factors.items() if not (np.isfinite(v) and v > 0)}
        if bad:
            raise DataError(f"sigma scale factors must be positive and finite; got {bad}")

    def apply(self, request, sigma) -> np.ndarray:
        """``sigma`` [N, K] of the tokens ``request`` [K] with their factors applied."""
        factors = np.array([self.factors.get(name, 1.0) for name in request])
        return np.asarray(sigma) * factors

    def save(self, path) -> None:
        save_json(path, self)

    @classmethod
    def load(cls, path=None) -> "SigmaScale":
        path = Path(path or default_sigma_scale_path())
        if not path.exists():
            raise DataError(f"no sigma scale file at {path}; run validation/fit_sigma_scale.py")
        return from_json(cls, load_json(path, "sigma scale factors"), f"sigma scale {path}")


def fit_sigma_factor(predicted, sigma, truth, truth_error, nominal=NOMINAL) -> float:
    """The factor on ``sigma`` that makes ``coverage_within`` equal ``nominal`` (coverage
    grows monotonically with the factor)."""
    sigma = np.asarray(sigma)
    return bisect_factor(
        lambda f: coverage_within(predicted, f * sigma, truth, truth_error) < nominal
    )


def bisect_factor(too_small, low: float = 0.05, high: float = 20.0, steps: int = 60) -> float:
    """The factor in [low, high] where the monotonic test ``too_small(factor)`` turns from
    True to False, by bisection in log factor (an end of the range if it never turns)."""
    lo, hi = np.log(low), np.log(high)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if too_small(np.exp(mid)) else (lo, mid)
    return float(np.exp(0.5 * (lo + hi)))


def default_sigma_scale_path() -> Path:
    return shipped_data_path("sigma_scale.json")
