"""bayesfm: a transformer foundation model for stars as a learned emulator inside NumPyro models.

The package reads top to bottom as a star flows through it (docs/architecture.md):
``tokens`` (what a star is) -> ``sources`` (where stars come from) -> ``model`` (the
foundation model and its emulator) -> ``bayes`` (prior, likelihood, the one-star NumPyro
model) -> ``infer`` (samplers and their verdicts) -> ``catalogue`` (many stars, resumable).
What users need is re-exported here.
"""

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.bayes.priors import GaussianMixturePrior, uniform_box_prior
from bayesfm.bayes.simulation import simulate_stars
from bayesfm.bayes.star_model import StarData, star_model
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_draws
from bayesfm.catalogue.stream import run_catalogue_parts
from bayesfm.common.errors import DataError, MissingDataPackageError
from bayesfm.infer.batched_nuts import run_batched_nuts
from bayesfm.infer.batched_svi import batched_svi_draws, run_batched_svi
from bayesfm.infer.diagnostics import ConvergenceCriteria, summarise
from bayesfm.infer.importance import ImportanceConfig, run_importance
from bayesfm.infer.misfit import label_misfit
from bayesfm.infer.nuts import NutsRunner
from bayesfm.infer.settings import ONE_STAR_NUTS, NutsConfig, SviConfig
from bayesfm.infer.setup import PreparedStars, StarInference, amortized_labels, prepare_stars
from bayesfm.infer.simulated import simulated_catalogue
from bayesfm.infer.svi import fit_svi, run_svi
from bayesfm.infer.trust import TrustCriteria
from bayesfm.model.emulator import Emulator, make_emulator
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.predict import predict
from bayesfm.sources.archive import read_xp_continuous, sample_xp_continuous
from bayesfm.sources.examples import load_example_stars
from bayesfm.sources.library import LibraryData, load_library
from bayesfm.sources.parts import InputPart, parquet_parts, xp_file_parts
from bayesfm.sources.tables import read_table
from bayesfm.tokens.grid import XP_WAVELENGTH_NM, XPBinning
from bayesfm.tokens.labels import LABEL_INPUTS, LABELS
from bayesfm.tokens.specs import TokenSpec, default_token_specs, tokens_from_columns
from bayesfm.tokens.split import SPLITS, split_mask, split_of
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Scaling, Vocabulary, fit_vocabulary

__version__ = "0.1.0"

__all__ = [
    # stars and their tokens
    "LABELS",
    "LABEL_INPUTS",
    "SPLITS",
    "Scaling",
    "StarTokens",
    "TokenSpec",
    "Vocabulary",
    "XPBinning",
    "XP_WAVELENGTH_NM",
    "default_token_specs",
    "fit_vocabulary",
    "split_mask",
    "split_of",
    "tokens_from_columns",
    # where stars come from
    "LibraryData",
    "load_example_stars",
    "load_library",
    "read_table",
    "InputPart",
    "parquet_parts",
    "read_xp_continuous",
    "sample_xp_continuous",
    "xp_file_parts",
    # the foundation model and its emulator
    "Emulator",
    "FoundationModel",
    "make_emulator",
    "predict",
    # the Bayesian model of one star
    "GaussianMixturePrior",
    "NoiseModel",
    "StarData",
    "simulate_stars",
    "star_model",
    "uniform_box_prior",
    # inference
    "ConvergenceCriteria",
    "NutsConfig",
    "ONE_STAR_NUTS",
    "SviConfig",
    "ImportanceConfig",
    "NutsRunner",
    "PreparedStars",
    "StarInference",
    "TrustCriteria",
    "amortized_labels",
    "fit_svi",
    "prepare_stars",
    "batched_svi_draws",
    "label_misfit",
    "run_batched_nuts",
    "run_batched_svi",
    "run_importance",
    "run_svi",
    "simulated_catalogue",
    "summarise",
    # catalogues
    "CatalogueConfig",
    "load_draws",
    "run_catalogue",
    "run_catalogue_parts",
    # errors
    "DataError",
    "MissingDataPackageError",
]
