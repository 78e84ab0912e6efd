"""Cleaned extinctions anchored to the raw label's scale, class by class."""

import numpy as np

from bayesfm.model.extinction_anchor import ExtinctionFit, anchor_to_label


def _stars(rng, n, teff, logg, stretch, shift):
    """Stars of one class: true A_K, its noisy label, and fitted values stretched by
    ``stretch`` and shifted by ``shift`` (the bias of an emulator with a diluted response)."""
    true = rng.uniform(0.0, 0.6, n)
    label = true + rng.normal(0.0, 0.05, n)
    labels = np.column_stack([np.full(n, teff), np.full(n, logg), np.zeros((n, 2))])
    return true, label, stretch * true + shift, labels


def test_each_class_is_mapped_back_onto_the_true_scale(rng):
    giants = _stars(rng, 4000, 4500.0, 2.0, 1.3, -0.04)
    dwarfs = _stars(rng, 4000, 5800.0, 4.4, 1.6, -0.02)
    true, label, fitted, labels = (np.concatenate(p) for p in zip(giants, dwarfs, strict=True))
    anchored = anchor_to_label(ExtinctionFit(fitted, np.full(len(true), 0.01)), labels, label)
    for rows, stretch in ((slice(0, 4000), 1.3), (slice(4000, None), 1.6)):
        np.testing.assert_allclose(anchored.a_k[rows], true[rows], atol=0.01)
        slope, intercept = np.polyfit(anchored.a_k[rows], label[rows], 1)
        np.testing.assert_allclose([slope, intercept], [1.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(anchored.a_k_err[rows], 0.01 / stretch, rtol=0.03)


def test_stars_without_a_label_follow_their_class_and_small_classes_are_kept(rng):
    true, label, fitted, labels = _stars(rng, 2000, 4500.0, 2.0, 1.3, 0.0)
    label[:100] = np.nan  # no ak_targ: mapped with the class's line all the same
    few = _stars(rng, 20, 6500.0, 4.2, 2.0, 0.0)  # a class too small to fit a line
    fitted_all = np.concatenate([fitted, few[2]])
    anchored = anchor_to_label(
        ExtinctionFit(fitted_all, np.full(len(fitted_all), 0.01)),
        np.concatenate([labels, few[3]]),
        np.concatenate([label, few[1]]),
    )
    np.testing.assert_allclose(anchored.a_k[:100], true[:100], atol=0.01)
    np.testing.assert_array_equal(anchored.a_k[2000:], few[2])
