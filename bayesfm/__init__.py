"""bayesfm: a transformer foundation model for stars as a learned emulator inside NumPyro models."""

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.common.errors import DataError, MissingDataPackageError
from bayesfm.model.emulator import Emulator, make_emulator
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.predict import predict
from bayesfm.sources.archive import read_xp_continuous, sample_xp_continuous
from bayesfm.sources.examples import load_example_stars
from bayesfm.sources.library import LibraryData, load_library
from bayesfm.sources.tables import read_table
from bayesfm.tokens.grid import XP_WAVELENGTH_NM, XPBinning
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.specs import TokenSpec, default_token_specs, tokens_from_columns
from bayesfm.tokens.split import SPLITS, split_mask, split_of
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Vocabulary, fit_vocabulary

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Emulator",
    "FoundationModel",
    "LABEL_INPUTS",
    "NoiseModel",
    "make_emulator",
    "predict",
    "LibraryData",
    "MissingDataPackageError",
    "SPLITS",
    "StarTokens",
    "TokenSpec",
    "Vocabulary",
    "XPBinning",
    "XP_WAVELENGTH_NM",
    "default_token_specs",
    "fit_vocabulary",
    "load_example_stars",
    "load_library",
    "read_table",
    "read_xp_continuous",
    "sample_xp_continuous",
    "split_mask",
    "split_of",
    "tokens_from_columns",
]
