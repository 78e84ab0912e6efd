import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.tokens.specs import NOMINAL_MAG_ERROR, default_token_specs, tokens_from_columns


def _columns(n=3):
    flux = np.tile(np.linspace(1.0, 2.0, 343), (n, 1))
    return {
        "source_id": np.arange(n) + 100,
        "flux": flux,
        "flux_error": 0.01 * flux,
        "g": np.full(n, 12.0),
        "bp": np.full(n, 12.4),
        "rp": np.full(n, 11.5),
        "j": np.full(n, 10.5),
        "h": np.full(n, 10.0),
        "k": np.full(n, 9.9),
        "teff": np.full(n, 5000.0),
        "teff_err": np.full(n, 50.0),
        "logg": np.full(n, 3.0),
        "logg_err": np.full(n, 0.05),
        "a_k": np.array([0.1, -5.0, 0.05])[:n],
    }


def test_tokens_from_columns_values_and_masks():
    tokens = tokens_from_columns(_columns())
    assert tokens.names == tuple(s.name for s in default_token_specs())
    bp_rp, bp_rp_err = tokens.column("bp_rp")
    np.testing.assert_allclose(bp_rp, 0.9)
    np.testing.assert_allclose(
        bp_rp_err, np.hypot(NOMINAL_MAG_ERROR["bp"], NOMINAL_MAG_ERROR["rp"])
    )
    j_k, _ = tokens.column("j_k")
    np.testing.assert_allclose(j_k, 0.6)
    fe_h, fe_h_err = tokens.column("fe_h")  # not given: absent, not imputed
    assert np.isnan(fe_h).all() and np.isnan(fe_h_err).all()
    a_k, _ = tokens.column("a_k")  # -5 mag is a failed ak_targ: absent
    assert np.isnan(a_k[1]) and a_k[0] == pytest.approx(0.1)


def test_nan_value_is_an_absent_token():
    cols = _columns()
    cols["teff"] = np.array([5000.0, np.nan, 5100.0])
    tokens = tokens_from_columns(cols)
    assert tokens.present[:, tokens.index(["teff"])[0]].tolist() == [True, False, True]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(teff=np.array([5000.0, np.inf, 1.0])), "infinite"),
        (lambda c: c.update(teff_err=np.array([50.0, -1.0, 50.0])), "teff: 1 star"),
        (lambda c: c.update(logg_err=np.array([0.0, 0.1, 0.1])), "logg: 1 star"),
        (lambda c: c.update(teff_err=np.array([50.0, np.nan, 50.0])), "missing, zero or negative"),
        (lambda c: c["flux_error"].__setitem__((0, 5), -0.1), "flux: 1 star"),
        (lambda c: c.update(flux=c["flux"][:, :300], flux_error=c["flux_error"][:, :300]), "343"),
        (lambda c: c.update(vmag=np.ones(3)), "unknown column"),
        (lambda c: c.update(logg=np.ones(2)), "has 2 rows"),
        (lambda c: c.pop("flux_error"), "flux_error"),
        (lambda c: c.pop("source_id"), "source_id"),
    ],
)
def test_bad_input_is_a_clear_error(change, message):
    cols = _columns()
    change(cols)
    with pytest.raises(DataError, match=message):
        tokens_from_columns(cols)


def test_duplicates_identical_merge_conflicting_raise():
    cols = _columns()
    cols["source_id"] = np.array([7, 7, 8])
    cols["a_k"] = np.array([0.1, 0.1, 0.2])
    tokens = tokens_from_columns(cols)
    assert tokens.source_id.tolist() == [7, 8]
    cols["teff"] = np.array([5000.0, 5001.0, 5000.0])
    with pytest.raises(DataError, match="different values"):
        tokens_from_columns(cols)


def test_unknown_token_names_are_an_error():
    tokens = tokens_from_columns(_columns())
    with pytest.raises(DataError, match="unknown token name"):
        tokens.index(["teff", "vsini"])
