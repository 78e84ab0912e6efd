import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.tokens.grid import XP_WAVELENGTH_NM, XPBinning, bin_spectra, check_grid


def test_grid_is_gaiaxpy_default():
    assert XP_WAVELENGTH_NM.size == 343
    assert XP_WAVELENGTH_NM[0] == 336 and XP_WAVELENGTH_NM[-1] == 1020


def test_binning_normalises_and_averages(rng):
    binning = XPBinning()
    slope = 1.0 + 0.001 * (XP_WAVELENGTH_NM - 336)
    flux = np.stack([3e-16 * slope, 7e-17 * slope])
    error = 0.02 * flux
    values, errors = bin_spectra(flux, error, binning)
    assert values.shape == (2, binning.n_bins) == (2, 30)
    # same shape, different scale: identical normalised tokens
    np.testing.assert_allclose(values[0], values[1], rtol=1e-12)
    norm = np.median(slope[binning.norm_pixels()])
    centre_slope = 1.0 + 0.001 * (binning.centres_nm - 1.0 - 336)  # mean of 10 pixels
    np.testing.assert_allclose(values[0], centre_slope / norm, rtol=1e-12)
    # correlated pixels: bin error is the mean pixel error, not sqrt(10) smaller
    np.testing.assert_allclose(errors[0], 0.02 * values[0], rtol=1e-12)


def test_missing_pixel_makes_its_bin_absent():
    flux = np.ones((1, 343))
    flux[0, 100] = np.nan
    values, _ = bin_spectra(flux, 0.01 * np.ones((1, 343)))
    assert np.isnan(values[0]).sum() == 1


def test_wrong_length_or_grid_is_an_error():
    with pytest.raises(DataError, match="343 samples"):
        bin_spectra(np.ones((2, 342)), np.ones((2, 342)))
    with pytest.raises(DataError, match="different wavelength grid"):
        check_grid(np.ones((1, 343)), wavelength_nm=np.linspace(330, 1050, 343))
    with pytest.raises(DataError, match="shape"):
        bin_spectra(np.ones((2, 343)), np.ones((3, 343)))


def test_binning_rejects_bad_configuration():
    with pytest.raises(ValueError, match="multiple"):
        XPBinning(width_nm=3.0)
    with pytest.raises(ValueError, match="outside"):
        XPBinning(start_nm=300.0)
    with pytest.raises(ValueError, match="whole number"):
        XPBinning(start_nm=390.0)
