"""The validation report's settings. The defaults are the full report; a config file
(configs/validation/*.json) holds only the fields that differ from them."""

from dataclasses import dataclass, replace

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.jsonio import from_json, load_json
from bayesfm.infer.settings import SviConfig


@dataclass(frozen=True)
class ValidationConfig:
    """What the report computes, on how many stars, and where its resumable runs live.

    Attributes:
        seed: Seeds every run of the report (catalogues, SBC simulation, SVI).
        work_dir: Folder of the resumable runs (catalogue chunks, SVI draws).
        test_stars: The first N test-split stars (None: all of them).
        test_method: Catalogue method of the held-out section.
        method_check_stars: Stars of the NUTS / importance / SVI cross-check.
        sbc_stars: Simulated stars of the SBC (importance sampling and SVI).
        sbc_nuts_stars: The first N of them that NUTS also fits.
        sbc_truth_sigma_nuts_stars: The same for the controlled test (sigma at the truth).
        reanchor_passes: Importance-sampling passes that re-anchor the emulator sigma.
        sbc_ranks: Thinned draws among which a truth's rank is taken.
        hidden_stars: Stars whose blue flux is hidden and predicted.
        hidden_below_nm: Flux tokens blueward of this are hidden.
        catalogue: Settings of the importance-sampling and default-path catalogues.
        nuts_catalogue: Settings of the NUTS catalogues (cross-check and SBC).
        svi: Settings of the batched SVI fits.
    """

    seed: int = 0
    work_dir: str = "runs/validation"
    test_stars: int | None = None
    test_method: str = "auto"
    method_check_stars: int = 200
    sbc_stars: int = 300
    sbc_nuts_stars: int = 300
    sbc_truth_sigma_nuts_stars: int = 300
    reanchor_passes: int = 3
    sbc_ranks: int = 99
    hidden_stars: int = 300
    hidden_below_nm: int = 500
    catalogue: CatalogueConfig = CatalogueConfig(chunk_size=64)
    nuts_catalogue: CatalogueConfig = CatalogueConfig(method="nuts", chunk_size=64)
    svi: SviConfig = SviConfig()

    @classmethod
    def load(cls, path) -> "ValidationConfig":
        """The defaults, overridden by the JSON file ``path`` (None: the defaults alone)."""
        if path is None:
            return cls()
        return from_json(cls, load_json(path, "validation config"), "validation config")

    def catalogue_settings(self, method: str, samplers_only: bool = True) -> CatalogueConfig:
        """The catalogue settings of a report run with ``method``, drawing saved.
        ``samplers_only``: every star sampled, also outside the training domain (the
        samplers' own checks); False: the catalogue's choice there (its default path)."""
        base = self.nuts_catalogue if method == "nuts" else self.catalogue
        domain = "posterior" if samplers_only else base.outside_domain
        return replace(base, method=method, seed=self.seed, save_draws=True, outside_domain=domain)
