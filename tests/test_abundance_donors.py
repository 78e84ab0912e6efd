import numpy as np

from bayesfm.model.abundance_donors import AbundanceDonors
from bayesfm.model.batching import EmulatorQuery, TaskMix, sample_batch

NAN = np.nan


def _labels():
    """teff, logg, fe_h, alpha_m, a_k of four complete stars, a hot star without abundances,
    one without alpha_m and one without teff."""
    return np.array(
        [
            [4500, 2.5, -0.2, 0.10, 0.1],
            [5000, 3.0, 0.0, 0.05, 0.1],
            [6000, 4.2, 0.1, 0.00, 0.1],
            [6500, 4.1, -0.3, 0.02, 0.1],
            [9000, 4.0, NAN, NAN, 0.05],
            [6200, 4.0, -0.1, NAN, 0.05],
            [NAN, 4.0, NAN, NAN, 0.05],
        ]
    )


def test_donors_are_the_hottest_complete_stars_and_fill_only_missing_abundances():
    labels = _labels()
    donors = AbundanceDonors.from_labels(labels, quantile=0.5)
    np.testing.assert_array_equal(donors.abundances, [[0.1, 0.0], [-0.3, 0.02]])
    np.testing.assert_array_equal(donors.fillable(labels), [0, 0, 0, 0, 1, 1, 0])

    filled = donors.fill(np.random.default_rng(0), labels)
    assert np.isfinite(filled[4]).all()
    assert filled[4, 2:4].tolist() in donors.abundances.tolist()
    assert filled[5, 2] == -0.1 and filled[5, 3] in donors.abundances[:, 1]
    np.testing.assert_array_equal(filled[:4], labels[:4])
    assert np.isnan(filled[6, [0, 2, 3]]).all()
    only_first = donors.fill(np.random.default_rng(0), labels, rows=np.arange(7) != 4)
    assert np.isnan(only_first[4, 2:4]).all()


def test_emulator_task_takes_a_star_without_abundances_only_with_donors():
    # tokens: the five labels (fe_h at 2, alpha_m at 3), then three observables
    labels = np.nan_to_num(_labels()[4:5], nan=0.0)
    values = np.concatenate([labels, np.ones((1, 3))], axis=1).repeat(16, axis=0)
    present = np.ones_like(values, bool)
    present[:, 2:4] = False
    label_tokens = np.arange(8) < 5
    errors = np.full(8, 0.1, np.float32)
    donors = AbundanceDonors(np.array([[0.3, 0.2], [0.4, 0.1]]))
    emulator_only = TaskMix(0.0, 0.0, 0.0, 1.0)

    def batch(query):
        rng = np.random.default_rng(1)
        return sample_batch(
            rng, values, errors[None].repeat(16, 0), present, label_tokens, ~label_tokens,
            emulator_only, emulator_query=query,
        )  # fmt: skip

    plain = EmulatorQuery(label_tokens, errors, np.arange(5))
    with_donors = EmulatorQuery(label_tokens, errors, np.arange(5), donors)
    without, stand_in = batch(plain), batch(with_donors)
    # without donors: labels -> rest, so no abundance in any context
    assert not np.isin(without.context_index[without.context_mask], [2, 3]).any()
    # with donors: every star's context is the emulator's five inputs, abundances a donor's
    context = stand_in.context_index * stand_in.context_mask
    assert (np.sort(context, axis=1)[:, -5:] == np.arange(5)).all()
    fe_h = stand_in.context_value[stand_in.context_mask & (stand_in.context_index == 2)]
    assert len(fe_h) == 16 and np.isclose(fe_h[:, None], [0.3, 0.4]).any(axis=1).all()
    np.testing.assert_array_equal(stand_in.target_index[stand_in.target_mask] >= 5, True)
