"""Sampler settings, each default defined once: importance sampling, NUTS (for catalogues,
and the careful single-star preset) and SVI."""

from dataclasses import dataclass

from bayesfm.common.errors import DataError

__all__ = ["ImportanceConfig", "POOLING", "NutsConfig", "ONE_STAR_NUTS", "SviConfig", "GUIDE_NAMES"]

GUIDE_NAMES = ("normal", "mvn", "iaf")  # AutoNormal, AutoMultivariateNormal, AutoIAFNormal
POOLING = ("none", "refinements", "all")


@dataclass(frozen=True)
class ImportanceConfig:
    """Proposal and acceptance settings."""

    num_draws: int = 500  # first round, every star
    mode_rounds: int = 2  # exact Hessians on the way from each start to its mode
    quasi_newton_steps: int = 19  # BFGS steps after each round's Newton step
    refinements: int = 5  # later rounds, only for stars that have not passed yet (a round of
    # 1,000 draws costs a failing star a thirtieth of the NUTS fallback: benchmarks/refinement_rounds.py)
    min_rounds: int = 1  # rounds every star goes through, passed or not
    refine_draws: int = 1000  # per later round and star
    df: float = 5.0  # Student-t degrees of freedom: heavy tails guard against a too-narrow proposal
    inflation: float = 1.2  # first proposal's scale / the Laplace (or amortized) sigma
    refine_inflation: float = 1.3  # later proposals' scale / the weighted standard deviation
    max_khat: float = 0.7
    min_ess: float = 100.0
    num_keep: int = 1000  # equal-weight draws kept per star
    top_up_draws: int = 4000  # after the last round, for stars failing only the ESS check
    logg_starts: tuple[float, ...] = (2.5, 4.5)  # mode searches besides the amortized one's
    farthest_logg_start_only: bool = True  # of those, only the farthest from the amortized logg
    scout_draws: int = 256  # points around the amortized prediction scouting for starts (0: none)
    scout_inflation: float = 3.0  # their spread / the amortized sigma
    scout_starts: int = 2  # mode searches from the scouted points of highest density
    pool_rounds: str = "none"  # rounds weighed together: none, refinements (after the first), all
    # find the modes with the distilled proposal emulator where the model has one
    # (bayesfm.model.proposal_emulator); the draws are always weighed with the emulator
    proposal_emulator: bool = True

    @property
    def mode_searches(self) -> int:
        """Mode searches per star: the amortized start's, the logg starts and scouted ones used."""
        extra = len(self.logg_starts)
        scouted = self.scout_starts if self.scout_draws else 0
        return 1 + (min(extra, 1) if self.farthest_logg_start_only else extra) + scouted

    def __post_init__(self):
        if self.pool_rounds not in POOLING:
            raise DataError(f"unknown pool_rounds {self.pool_rounds!r}; choose one of {POOLING}")
        if self.scout_draws < 0 or self.scout_starts < 0 or not self.scout_inflation > 0:
            raise DataError(
                f"scouting needs scout_draws >= 0 (0: none), scout_starts >= 0 and "
                f"scout_inflation > 0; got {self.scout_draws}, {self.scout_starts}, "
                f"{self.scout_inflation}"
            )


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
