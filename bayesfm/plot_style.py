"""The one setting every bayesfm figure is drawn under."""

import warnings
from contextlib import contextmanager

import matplotlib.pyplot as plt

__all__ = ["plain_plotting"]


@contextmanager
def plain_plotting():
    """Plain-text rendering (GaiaXPy switches matplotlib to LaTeX on import, which needs a
    TeX install) and no matplotlib deprecation notices from inside ArviZ 0.23."""
    with plt.rc_context({"text.usetex": False}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
