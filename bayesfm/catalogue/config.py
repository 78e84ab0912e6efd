"""A catalogue run's settings: everything that decides its numbers (saved as ``run.json``)."""

from dataclasses import dataclass

from bayesfm.common.errors import DataError
from bayesfm.common.jsonio import from_json, to_json
from bayesfm.infer.diagnostics import ConvergenceCriteria
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.settings import NutsConfig
from bayesfm.infer.trust import TrustCriteria

__all__ = ["METHODS", "OUTSIDE_DOMAIN", "CatalogueConfig"]

METHODS = ("auto", "importance", "nuts")
OUTSIDE_DOMAIN = ("amortized", "posterior")  # bayesfm.catalogue.outside_domain


@dataclass(frozen=True)
class CatalogueConfig:
    """Everything that decides a catalogue's numbers (saved as ``run.json``)."""

    method: str = "auto"
    chunk_size: int = 64
    seed: int = 0
    save_draws: bool = False
    nuts: NutsConfig = NutsConfig()
    importance: ImportanceConfig = ImportanceConfig()
    convergence: ConvergenceCriteria = ConvergenceCriteria(min_ess_bulk=200.0)
    trust: TrustCriteria = TrustCriteria()
    outside_domain: str = "amortized"  # stars with amortized labels outside the domain

    def __post_init__(self):
        if self.method not in METHODS:
            raise DataError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        if self.outside_domain not in OUTSIDE_DOMAIN:
            raise DataError(
                f"unknown outside_domain {self.outside_domain!r}; choose one of "
                f"{list(OUTSIDE_DOMAIN)}"
            )
        if self.chunk_size < 1:
            raise DataError(f"chunk_size must be at least 1, not {self.chunk_size}")

    def to_dict(self) -> dict:
        return to_json(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CatalogueConfig":
        """Settings from a dict like ``to_dict``'s; missing keys keep their defaults."""
        return from_json(cls, data, "catalogue")
