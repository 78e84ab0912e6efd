"""bayesfm: a transformer foundation model for stars as a learned emulator inside NumPyro models."""

from .archive import read_xp_continuous, sample_xp_continuous
from .emulator import LABEL_INPUTS, Emulator, make_emulator
from .errors import DataError, MissingDataPackageError
from .examples import load_example_stars
from .foundation_model import FoundationModel
from .library import LibraryData, load_library
from .likelihood import NoiseModel
from .predict import predict
from .split import SPLITS, split_mask, split_of
from .star_tokens import StarTokens
from .tables import read_table
from .tokens import TokenSpec, default_token_specs, tokens_from_columns
from .vocabulary import Vocabulary, fit_vocabulary
from .xp_grid import XP_WAVELENGTH_NM, XPBinning

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
