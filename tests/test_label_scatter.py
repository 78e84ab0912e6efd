"""The label scatter: offsets on every posterior draw, and its fit on Laplace posteriors."""

import dataclasses

import arviz as az
import jax
import numpy as np
import pytest

from bayesfm.bayes.noise_model import SCATTER_TRUNCATION, NoiseModel
from bayesfm.catalogue.chunk import fit_chunk
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.common.errors import DataError
from bayesfm.common.metrics import robust_sigma
from bayesfm.infer.idata import finish
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.label_scatter import (
    fit_label_scatter,
    importance_posteriors,
    scatter_for_coverage,
    scatter_from_draws,
)
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.tokens.labels import LABEL_INPUTS

SCATTER = np.array([100.0, 0.2, 0.1, 0.0, 0.03])


def _with_scatter(setup, scatter):
    noise = dataclasses.replace(setup.noise.without_label_scatter(), label_scatter=scatter)
    return dataclasses.replace(setup, noise=noise)


def test_scatter_labels_adds_offsets_of_the_given_spread_and_nothing_without_one():
    noise = NoiseModel.independent(["a", "b"])
    draws = np.ones((20000, 5), np.float32)
    key = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(noise.scatter_labels(draws, key), draws)
    scattered = dataclasses.replace(noise, label_scatter=SCATTER).scatter_labels(draws, key)
    np.testing.assert_allclose(scattered.std(axis=0), SCATTER, rtol=0.03)
    np.testing.assert_allclose(scattered.mean(axis=0), 1.0, atol=0.05 * SCATTER.max())


def _noise_classes():
    names = ("xp_400", "xp_500", "bp_rp")
    scatter = np.stack([SCATTER, 3 * SCATTER])
    return NoiseModel.independent(names), scatter


def test_the_flux_noise_level_is_the_median_relative_error_of_the_observed_flux_tokens():
    noise, _ = _noise_classes()
    data = type("Data", (), {})()
    data.values = np.array([[10.0, 20.0, 1.0], [10.0, 20.0, 1.0], [10.0, 0.0, 1.0]])
    data.errors = np.array([[0.1, 0.4, 0.5], [0.1, 0.4, 0.5], [1.0, 1.0, 0.01]])
    data.mask = np.array([[True, True, True], [True, False, True], [False, False, True]])
    level = noise.flux_noise_level(data)
    np.testing.assert_allclose(level[:2], [0.015, 0.01])  # the colour token does not count
    assert np.isnan(level[2])  # no observed flux token


def test_classes_of_flux_noise_get_their_own_scatter_and_need_the_level():
    plain, scatter = _noise_classes()
    noise = dataclasses.replace(plain, label_scatter=scatter, label_scatter_edges=(0.01,))
    draws = np.ones((3, 20000, 5), np.float32)
    level = np.array([0.005, 0.02, np.nan])[:, None]
    scattered = noise.scatter_labels(draws, jax.random.PRNGKey(0), level)
    expected = np.stack([SCATTER, 3 * SCATTER, 3 * SCATTER])  # NaN: the noisiest class
    np.testing.assert_allclose(scattered.std(axis=1), expected, rtol=0.03)
    with pytest.raises(DataError, match="noise_level"):
        noise.scatter_labels(draws, jax.random.PRNGKey(0))


def test_each_draw_takes_the_scatter_of_its_side_of_the_split():
    plain, scatter = _noise_classes()
    by_type = np.stack([scatter, 2 * scatter])  # [side, class, input]
    noise = dataclasses.replace(
        plain, label_scatter=by_type, label_scatter_edges=(0.01,), label_scatter_split=(1, 3.5)
    )
    draws = np.ones((2, 20000, 5), np.float32)
    draws[:, :, 1] = np.where(np.arange(20000) < 10000, 2.5, 4.5)  # a giant half, a dwarf half
    level = np.array([0.005, 0.02])[:, None]
    offsets = noise.scatter_labels(draws, jax.random.PRNGKey(0), level) - draws
    for star in range(2):
        giant, dwarf = offsets[star, :10000], offsets[star, 10000:]
        np.testing.assert_allclose(giant.std(axis=0), scatter[star], rtol=0.04)
        np.testing.assert_allclose(dwarf.std(axis=0), 2 * scatter[star], rtol=0.04)


def test_each_input_can_take_its_scatter_from_a_split_of_its_own():
    plain, scatter = _noise_classes()
    alpha = LABEL_INPUTS.index("alpha_m")
    scatter[:, alpha] = 0.05
    by_side = np.stack([scatter, 2 * scatter])  # [side, class, input]
    alpha_on_fe_h = tuple((2, -0.5) if name == "alpha_m" else (1, 3.5) for name in LABEL_INPUTS)
    noise = dataclasses.replace(
        plain,
        label_scatter=by_side,
        label_scatter_edges=(0.01,),
        label_scatter_split=alpha_on_fe_h,
    )
    draws = np.ones((1, 20000, 5), np.float32)  # giants: logg 1
    draws[:, :, 2] = np.where(np.arange(20000) < 10000, -1.0, 0.0)  # metal-poor, then rich
    offsets = noise.scatter_labels(draws, jax.random.PRNGKey(0), np.array([[0.005]])) - draws
    poor, rich = offsets[0, :10000], offsets[0, 10000:]
    np.testing.assert_allclose(poor.std(axis=0)[alpha], scatter[0, alpha], rtol=0.04)
    np.testing.assert_allclose(rich.std(axis=0)[alpha], 2 * scatter[0, alpha], rtol=0.04)
    others = [i for i in range(5) if i != alpha and scatter[0, i] > 0]
    for half in (poor, rich):  # every other input is on the giants' side in both halves
        np.testing.assert_allclose(half.std(axis=0)[others], scatter[0, others], rtol=0.04)
    with pytest.raises(DataError, match="one per input"):
        dataclasses.replace(noise, label_scatter_split=alpha_on_fe_h[:3])


def test_student_t_offsets_have_the_given_scale_and_heavier_tails():
    noise = dataclasses.replace(
        NoiseModel.independent(["a"]), label_scatter=SCATTER, label_scatter_dof=3.0
    )
    draws = np.zeros((200000, 5), np.float32)
    offsets = noise.scatter_labels(draws, jax.random.PRNGKey(2))[:, 0] / SCATTER[0]
    # t(3): the central 50% spans +-0.765 (a normal's +-0.674); 2% lie beyond +-4.54
    np.testing.assert_allclose(np.quantile(np.abs(offsets), 0.5), 0.765, rtol=0.02)
    np.testing.assert_allclose(np.mean(np.abs(offsets) > 4.54), 0.02, rtol=0.1)


def test_cauchy_offsets_are_truncated_so_that_a_draws_mean_and_sd_exist():
    noise = dataclasses.replace(
        NoiseModel.independent(["a"]), label_scatter=SCATTER, label_scatter_dof=1.0
    )
    draws = np.zeros((200000, 5), np.float32)
    offsets = noise.scatter_labels(draws, jax.random.PRNGKey(3))[:, 0] / SCATTER[0]
    assert np.abs(offsets).max() <= SCATTER_TRUNCATION
    # |Cauchy| truncated at T: P(|x| < q) = atan(q) / atan(T); the median is tan(atan(T) / 2)
    half = np.tan(np.arctan(SCATTER_TRUNCATION) / 2)
    np.testing.assert_allclose(np.quantile(np.abs(offsets), 0.5), half, rtol=0.02)
    beyond = 1 - np.arctan(12.7) / np.arctan(SCATTER_TRUNCATION)  # a Cauchy's 95% limit
    np.testing.assert_allclose(np.mean(np.abs(offsets) > 12.7), beyond, rtol=0.1)


def test_label_scatter_shapes_that_do_not_match_their_classes_are_refused():
    plain, scatter = _noise_classes()
    with pytest.raises(DataError, match="rows"):
        dataclasses.replace(plain, label_scatter=scatter, label_scatter_edges=(0.01, 0.02))
    with pytest.raises(DataError, match="label_scatter"):
        dataclasses.replace(plain, label_scatter=scatter)
    with pytest.raises(DataError, match="two with a label_scatter_split"):
        dataclasses.replace(
            plain, label_scatter=scatter, label_scatter_edges=(0.01,), label_scatter_split=(1, 3)
        )
    with pytest.raises(DataError, match="increase"):
        dataclasses.replace(
            plain, label_scatter=np.stack([*scatter, scatter[0]]), label_scatter_edges=(0.02, 0.01)
        )
    with pytest.raises(DataError, match="dof"):
        dataclasses.replace(plain, label_scatter=scatter[0], label_scatter_dof=0.0)


def test_label_scatter_classes_survive_a_save_and_load(tmp_path):
    plain, scatter = _noise_classes()
    noise = dataclasses.replace(
        plain,
        label_scatter=np.stack([scatter, scatter]),
        label_scatter_edges=(0.01,),
        label_scatter_split=(1, 3.5),
        label_scatter_dof=3.0,
    )
    noise.save(tmp_path / "noise.json")
    loaded = NoiseModel.load(tmp_path / "noise.json")
    np.testing.assert_array_equal(loaded.label_scatter, noise.label_scatter)
    assert loaded.label_scatter_edges == (0.01,) and loaded.label_scatter_split == (1, 3.5)
    assert loaded.label_scatter_dof == 3.0


def test_a_negative_label_scatter_is_refused():
    with pytest.raises(DataError, match="label_scatter"):
        NoiseModel(("a",), np.ones(1), np.eye(1), label_scatter=np.array([1.0, -0.1]))


def test_catalogue_draws_differ_from_the_plain_ones_by_the_scatter(tiny_model_path, example_stars):
    setup = StarInference.default(tiny_model_path)
    stars = example_stars.tokens.take(np.arange(4))
    config = CatalogueConfig(
        method="importance",
        save_draws=True,
        outside_domain="posterior",
        importance=ImportanceConfig(
            num_draws=200,
            mode_rounds=2,
            quasi_newton_steps=2,
            refinements=0,
            num_keep=400,
            top_up_draws=0,
        ),
    )
    plain = fit_chunk(_with_scatter(setup, None), stars, config, 0).draws
    scattered = fit_chunk(_with_scatter(setup, SCATTER), stars, config, 0).draws
    offsets = (scattered - plain).reshape(-1, 5)
    offsets = offsets[np.isfinite(offsets).all(axis=1)]  # draw slots a star did not fill
    assert len(offsets) >= 1000
    # The two chunks' draws agree to float rounding, which XLA's CPU runtime does not promise
    # bit for bit between runs; with this untrained model's degenerate weights a rounding
    # difference can change which draw the resampling keeps (about one in a thousand), so the
    # offsets are judged by robust statistics.
    scattered_labels = SCATTER > 0
    spread = [robust_sigma(offsets[:, i]) for i in np.flatnonzero(scattered_labels)]
    np.testing.assert_allclose(spread, SCATTER[scattered_labels], rtol=0.1)
    assert np.quantile(np.abs(offsets[:, ~scattered_labels]), 0.99) < 1e-4


def test_single_star_posteriors_get_the_scatter_on_their_label_sites(example_stars):
    draws = {name: np.zeros((2, 3000)) for name in LABEL_INPUTS}
    idata = az.from_dict(posterior=draws, observed_data={"obs": np.zeros(3)})
    data = type(
        "Data", (), {"mask": np.ones(3, bool), "values": np.ones(3), "errors": np.ones(3)}
    )()
    noise = dataclasses.replace(NoiseModel.independent(["a"]), label_scatter=SCATTER)
    idata = finish(idata, data, 1, "nuts", 1.0, noise, jax.random.PRNGKey(1))
    spread = [float(idata.posterior[name].std()) for name in LABEL_INPUTS]
    np.testing.assert_allclose(spread, SCATTER, rtol=0.05)


@pytest.fixture(scope="module")
def shipped_posteriors(example_stars):
    setup = StarInference.default()
    stars = example_stars.tokens.take(np.tile(np.arange(10), 6))
    prepared = prepare_stars(setup, stars)
    draws = importance_posteriors(_with_scatter(setup, None), prepared, jax.random.PRNGKey(0))
    level = setup.noise.flux_noise_level(prepared.data)
    return setup, stars.take(prepared.rows), draws, level


def _references(mode, sd, spread, seed):
    reference = mode + spread * sd * np.random.default_rng(seed).standard_normal(mode.shape)
    reference[:, 4] = np.nan  # no A_K reference: no scatter for it
    return reference


@pytest.mark.parametrize("dof", [None, 3.0])
def test_the_fitted_scale_gives_the_nominal_coverage(dof):
    rng = np.random.default_rng(4)
    sd = np.sqrt(rng.uniform(0.5, 2.0, 801))
    unit = rng.standard_normal(801) if dof is None else rng.standard_t(dof, 801)
    reference = sd * rng.standard_normal(801) + 1.5 * unit
    reference[-1] = np.nan  # a star without a reference counts for nothing
    draws = sd[:, None] * rng.standard_normal((801, 2000))  # posteriors centred on zero
    scatter, _ = scatter_for_coverage(draws, reference, np.zeros(801), dof)
    assert 1.2 < scatter < 1.8
    offsets = rng.standard_normal(2000) if dof is None else rng.standard_t(dof, 2000)
    predictive = draws[:-1] + scatter * offsets
    low68, high68, low95, high95 = np.quantile(predictive, [0.16, 0.84, 0.025, 0.975], axis=1)
    inside68 = np.mean((reference[:-1] > low68) & (reference[:-1] < high68))
    inside95 = np.mean((reference[:-1] > low95) & (reference[:-1] < high95))
    assert abs(inside68 - 0.68) < 0.03 and abs(inside95 - 0.95) < 0.02


def test_references_spread_wider_than_the_posteriors_give_a_scatter_in_the_true_range(
    shipped_posteriors,
):
    setup, stars, draws, _ = shipped_posteriors
    mode, sd = np.median(draws, axis=1), draws.std(axis=1)
    reference, error = _references(mode, sd, 2.5, seed=1), np.zeros_like(mode)
    scatter = fit_label_scatter(setup, stars, reference, error).label_scatter  # the same draws
    assert scatter.shape == (5,) and scatter[4] == 0
    extra = np.sqrt(2.5**2 - 1) * sd[:, :4]  # each star's own spread beyond its posterior
    assert (scatter[:4] > extra.min(axis=0)).all() and (scatter[:4] < extra.max(axis=0)).all()


def test_noisier_stars_and_dwarfs_with_wider_reference_offsets_get_a_larger_scatter(
    shipped_posteriors,
):
    setup, _, draws, level = shipped_posteriors
    mode, sd = np.median(draws, axis=1), draws.std(axis=1)
    noisy = level > np.median(level)
    dwarf = mode[:, 1] >= np.median(mode[:, 1])
    spread = np.where(noisy, 4.0, 1.0)[:, None] * np.where(dwarf, 3.0, 1.0)[:, None]
    unit = 3 * np.median(sd, axis=0)  # the same offsets' scale for every star
    reference = mode + spread * unit * np.random.default_rng(3).standard_normal(mode.shape)
    reference[:, 4] = np.nan
    split = (1, float(np.median(mode[:, 1])))
    noise = scatter_from_draws(
        setup.noise, draws, level, reference, np.zeros_like(mode), 2, split, dof=3.0
    )
    scatter = noise.label_scatter
    assert len(noise.label_scatter_edges) == 1 and scatter.shape == (2, 2, 5)
    assert noise.label_scatter_split == split and noise.label_scatter_dof == 3.0
    assert (scatter[:, 1, :4] > scatter[:, 0, :4]).all() and (scatter[..., 4] == 0).all()
    assert (scatter[1, :, :4] > scatter[0, :, :4]).all()


def test_a_split_of_its_own_gives_one_input_a_scatter_per_side_of_another(
    shipped_posteriors,
):
    setup, _, draws, level = shipped_posteriors
    mode, sd = np.median(draws, axis=1), draws.std(axis=1)
    poor = mode[:, 2] < np.median(mode[:, 2])
    spread = np.where(poor, 4.0, 1.0)[:, None]  # only the metal-poor half is spread wider
    unit = 3 * np.median(sd, axis=0)
    reference = mode + spread * unit * np.random.default_rng(4).standard_normal(mode.shape)
    reference[:, 4] = np.nan
    on_fe_h = (2, float(np.median(mode[:, 2])))
    split = (on_fe_h,) * 4 + ((1, 3.5),)  # every label's scatter split on fe_h
    noise = scatter_from_draws(
        setup.noise, draws, level, reference, np.zeros_like(mode), 1, split, dof=3.0
    )
    assert noise.label_scatter_split == split and noise.label_scatter.shape == (2, 5)
    assert (noise.label_scatter[0, :4] > 2 * noise.label_scatter[1, :4]).all()


def test_references_inside_the_posteriors_give_no_scatter(shipped_posteriors):
    setup, _, draws, level = shipped_posteriors
    # the central 68% half-width, not the sd: a two-mode posterior's sd is wider than its intervals
    low, mode, high = np.quantile(draws, [0.16, 0.5, 0.84], axis=1)
    width = (high - low) / 2
    # five sets of references for the same posteriors: 60 alone leave the fit noisy
    reference = np.concatenate([_references(mode, width, 0.5, seed=s) for s in range(2, 7)])
    repeated, levels = np.concatenate([draws] * 5), np.concatenate([level] * 5)
    noise = scatter_from_draws(setup.noise, repeated, levels, reference, np.zeros_like(reference))
    # a fitted variance can land just off zero; a fifth of the posterior width would add 2%
    assert (noise.label_scatter[:4] < 0.2 * np.median(width[:, :4], axis=0)).all()
    assert noise.label_scatter[4] == 0.0


def test_each_label_takes_the_tails_its_references_have():
    rng = np.random.default_rng(5)
    n, size = 1200, 1000
    draws = rng.standard_normal((n, size, 5))  # posteriors centred on zero, sd 1
    reference = rng.standard_normal((n, 5)) + np.stack(
        [rng.standard_t(1.5, n), *rng.standard_normal((3, n)), np.full(n, np.nan)], axis=1
    )
    noise = scatter_from_draws(
        NoiseModel.independent(["x"]),
        draws,
        np.ones(n),
        reference,
        np.zeros((n, 5)),
        dof=(1.5, 3.0, 30.0),
    )
    dof = noise.label_scatter_dof
    assert dof[0] == 1.5 and min(dof[1:4]) >= 3.0
    fixed = scatter_from_draws(
        NoiseModel.independent(["x"]), draws, np.ones(n), reference, np.zeros((n, 5)), dof=3.0
    )
    assert fixed.label_scatter_dof == 3.0


def test_per_label_degrees_of_freedom_and_truncation_give_each_label_its_tails_and_survive_a_save(
    tmp_path,
):
    noise = dataclasses.replace(
        NoiseModel.independent(["a"]),
        label_scatter=np.ones(5),
        label_scatter_dof=(1.5, 3.0, 3.0, 3.0, 30.0),
    )
    offsets = noise.scatter_labels(np.zeros((100000, 5), np.float32), jax.random.PRNGKey(1))
    tail = np.quantile(np.abs(offsets), 0.99, axis=0)
    assert tail[0] > 2 * tail[1] and tail[1] > 1.5 * tail[4]
    noise = dataclasses.replace(noise, label_scatter_truncation=15.0)
    noise.save(tmp_path / "noise.json")
    loaded = NoiseModel.load(tmp_path / "noise.json")
    assert loaded.label_scatter_dof == noise.label_scatter_dof
    assert loaded.label_scatter_truncation == 15.0
    with pytest.raises(DataError, match="one per input"):
        dataclasses.replace(noise, label_scatter_dof=(3.0, 3.0))
    with pytest.raises(DataError, match="truncation must be at least 1"):
        dataclasses.replace(noise, label_scatter_truncation=0.5)
