"""Sampler settings, each default defined once: NUTS (for catalogues, and the careful
single-star preset) and SVI."""

from dataclasses import dataclass

from bayesfm.common.errors import DataError

__all__ = ["NutsConfig", "ONE_STAR_NUTS", "SviConfig", "GUIDE_NAMES"]

GUIDE_NAMES = ("normal", "mvn", "iaf")  # AutoNormal, AutoMultivariateNormal, AutoIAFNormal


@dataclass(frozen=True)
class NutsConfig:
    """NUTS settings. The defaults are a catalogue's (many stars, a bounded tree depth so
    that no star stalls its batch); ``ONE_STAR_NUTS`` is the careful single-star preset."""

    num_warmup: int = 250
    num_samples: int = 500
    num_chains: int = 2
    target_accept: float = 0.85
    max_tree_depth: int = 6
    dense_mass: bool = True


# one star at a time (bayesfm fit): longer warm-up and blocks, NumPyro's default tree depth
ONE_STAR_NUTS = NutsConfig(num_warmup=400, num_samples=600, max_tree_depth=10)


@dataclass(frozen=True)
class SviConfig:
    """Variational fits: guide family, Adam steps and rate, and draws from the fitted guide."""

    guide: str = "mvn"
    num_steps: int = 2000
    learning_rate: float = 0.01
    num_draws: int = 1000

    def __post_init__(self):
        if self.guide not in GUIDE_NAMES:
            raise DataError(f"unknown guide {self.guide!r}; choose one of {sorted(GUIDE_NAMES)}")
