"""The likelihood's noise model: its label-space term, sampling, save/load and fitting."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bayesfm.bayes.likelihood import (
    CorrelatedTokens,
    log_likelihood,
    lower_triangular_inverse,
    star_whitener,
)
from bayesfm.bayes.noise_fit import fit_noise_model, fit_tail_dof, label_error
from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.common.errors import DataError
from bayesfm.model.emulator import Emulator

K, N_IN = 12, 3


def _correlation(rng, k=K):
    a = rng.normal(size=(k, k))
    corr = a @ a.T + k * np.eye(k)
    return corr / np.sqrt(np.outer(np.diag(corr), np.diag(corr)))


def _linear_emulator(rng):
    """A known smooth emulator: a fixed nonlinear map of 3 inputs to 12 outputs."""
    weights = jnp.asarray(rng.normal(size=(K, N_IN)), jnp.float32)
    offset = jnp.asarray(rng.normal(size=K), jnp.float32)

    def emulate(x):
        return weights @ x + 0.1 * jnp.tanh(weights @ x) + offset, jnp.full(K, 0.05)

    names = tuple(f"t{k}" for k in range(K))
    return Emulator(tuple(f"x{i}" for i in range(N_IN)), names, jax.jit(emulate))


def test_label_space_term_adds_j_e2_jt_to_the_covariance(rng):
    emulator = _linear_emulator(rng)
    corr, c = _correlation(rng), rng.uniform(0.7, 1.3, K)
    label_error = np.array([0.3, 0.0, 0.1])
    noise = NoiseModel(emulator.outputs, c, corr, label_error=label_error)
    x = rng.normal(size=N_IN)
    mean, sigma = emulator.emulate(jnp.asarray(x, jnp.float32))
    jac = np.asarray(emulator.jacobian(x), float)
    error = rng.uniform(0.01, 0.1, K)
    mask = np.ones(K, bool)
    mask[[1, 7]] = False
    whitener = star_whitener(noise, mask, error, sigma, jac)
    s = c * np.sqrt(error**2 + np.asarray(sigma) ** 2)
    cov = corr * np.outer(s, s) + jac @ np.diag(label_error**2) @ jac.T
    observed = np.asarray(mean) + rng.normal(size=K) * s
    ours = log_likelihood(observed, error, mask, whitener, mean, sigma, c)
    keep = np.flatnonzero(mask)
    reference = stats.multivariate_normal(np.asarray(mean)[keep], cov[np.ix_(keep, keep)]).logpdf(
        observed[keep]
    )
    assert float(ours) == pytest.approx(reference, rel=1e-4)


def test_student_t_log_likelihood_is_scipys_multivariate_t(rng):
    emulator = _linear_emulator(rng)
    noise = NoiseModel(emulator.outputs, rng.uniform(0.7, 1.3, K), _correlation(rng), tail_dof=6.0)
    x = rng.normal(size=N_IN)
    mean, sigma = emulator.emulate(jnp.asarray(x, jnp.float32))
    error = rng.uniform(0.01, 0.1, K)
    mask = np.ones(K, bool)
    mask[[0, 5]] = False
    whitener = star_whitener(noise, mask, error, sigma)
    s = noise.error_scale * np.sqrt(error**2 + np.asarray(sigma) ** 2)
    observed = np.asarray(mean) + 3 * rng.normal(size=K) * s  # well into the tails
    ours = log_likelihood(observed, error, mask, whitener, mean, sigma, noise.error_scale, 6.0)
    keep = np.flatnonzero(mask)
    shape = (noise.correlation * np.outer(s, s))[np.ix_(keep, keep)]
    reference = stats.multivariate_t(np.asarray(mean)[keep], shape, df=6.0).logpdf(observed[keep])
    assert float(ours) == pytest.approx(reference, rel=1e-4)


@pytest.mark.parametrize("tail_dof", [None, 8.0])
def test_sample_draws_from_the_distribution_log_prob_scores(rng, tail_dof):
    emulator = _linear_emulator(rng)
    noise = NoiseModel(emulator.outputs, rng.uniform(0.7, 1.3, K), _correlation(rng))
    noise = dataclasses.replace(noise, label_error=np.array([0.2, 0.1, 0.0]), tail_dof=tail_dof)
    x = jnp.asarray(rng.normal(size=N_IN), jnp.float32)
    mean, sigma = emulator.emulate(x)
    error = jnp.asarray(rng.uniform(0.02, 0.1, K), jnp.float32)
    mask = jnp.ones(K, bool)
    whitener = star_whitener(noise, mask, error, sigma, emulator.jacobian(x))
    tokens = CorrelatedTokens(mean, sigma, error, mask, whitener, noise)
    chol = lower_triangular_inverse(whitener)
    draws = np.asarray(tokens.sample(jax.random.PRNGKey(0), (40000,)), float)
    # the density log_prob evaluates is the MVN (or multivariate t) with this scale matrix
    s = noise.total_scale * np.sqrt(np.asarray(error) ** 2 + np.asarray(sigma) ** 2)
    shape = np.asarray(chol) @ np.asarray(chol).T * np.outer(s, s)
    if tail_dof is None:
        reference_dist, cov = stats.multivariate_normal(np.asarray(mean), shape), shape
    else:
        reference_dist = stats.multivariate_t(np.asarray(mean), shape, df=tail_dof)
        cov = shape * tail_dof / (tail_dof - 2)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.04 * np.abs(cov).max())
    some = draws[:5]
    reference = reference_dist.logpdf(some)
    np.testing.assert_allclose(np.asarray(tokens.log_prob(jnp.asarray(some))), reference, rtol=1e-4)


def test_noise_model_save_load_round_trips_the_label_error_and_tails(rng, tmp_path):
    noise = NoiseModel(
        tuple("abc"), np.ones(3), np.eye(3), label_error=np.array([55.0, 0.2, 0.1]), tail_dof=7.5
    )
    noise.save(tmp_path / "noise.json")
    loaded = NoiseModel.load(tmp_path / "noise.json")
    np.testing.assert_array_equal(loaded.label_error, noise.label_error)
    assert loaded.tail_dof == 7.5
    NoiseModel(tuple("abc"), np.ones(3), np.eye(3)).save(tmp_path / "plain.json")
    plain = NoiseModel.load(tmp_path / "plain.json")
    assert plain.label_error is None and plain.tail_dof is None


def test_tail_dof_is_recovered_from_student_t_chi_squares_and_none_for_gaussian_ones(rng):
    k = rng.integers(20, 35, size=4000)
    heavy = k * stats.f.rvs(k, 7.0, random_state=rng)
    assert fit_tail_dof(heavy, k) == pytest.approx(7.0, rel=0.2)
    gaussian = stats.chi2.rvs(k, random_state=rng)
    assert fit_tail_dof(gaussian, k) is None or fit_tail_dof(gaussian, k) > 100


C_TRUE = 0.8  # the token error scale of the simulated validation stars


def _validation_stars(rng, emulator, n, label_error):
    """(survey labels, observed tokens, token errors, survey labels, reported errors) of n
    simulated stars, the arguments of ``fit_noise_model``: tokens at the true labels with
    noise C_TRUE x their total error; survey labels off by their reported 0.05 and by
    ``label_error(truth)`` [n, N_IN] more."""
    truth = rng.normal(size=(n, N_IN))
    mean, sigma = jax.vmap(emulator.emulate)(jnp.asarray(truth, jnp.float32))
    obs_error = np.full((n, K), 0.05)
    total = C_TRUE * np.sqrt(obs_error**2 + np.asarray(sigma) ** 2)
    observed = np.asarray(mean) + rng.normal(size=(n, K)) * total
    reported = np.full((n, N_IN), 0.05)
    scatter = np.sqrt(reported**2 + label_error(truth) ** 2)
    survey = truth + rng.normal(size=(n, N_IN)) * scatter
    return survey, observed, obs_error, survey, reported


@pytest.mark.slow
def test_fit_recovers_the_scales_and_a_known_label_space_error(rng):
    """Tokens made at true labels; survey labels off by a known extra scatter: the fit
    finds the token scale c and that scatter, and no scatter where there is none."""
    emulator = _linear_emulator(rng)
    e_true = np.array([0.25, 0.0, 0.1])
    stars = _validation_stars(rng, emulator, 3000, lambda truth: e_true)
    noise = fit_noise_model(emulator, *stars)
    np.testing.assert_allclose(noise.error_scale, C_TRUE, rtol=0.1)
    assert noise.label_error[0] == pytest.approx(e_true[0], rel=0.15)
    assert noise.label_error[2] == pytest.approx(e_true[2], rel=0.25)
    assert noise.label_error[1] < 0.05
    assert noise.tail_dof is None or noise.tail_dof > 50  # Gaussian tokens: no heavy tails


@pytest.mark.slow
def test_split_label_error_is_chosen_by_the_anchor_and_fitted_per_side(rng):
    """Survey labels scatter more for stars with x1 < 0: the fit finds each side's e, and a
    star's covariance takes the row its anchor selects."""
    emulator = _linear_emulator(rng)
    e_below, e_above = np.array([0.3, 0.0, 0.15]), np.array([0.1, 0.0, 0.05])
    stars = _validation_stars(
        rng, emulator, 4000, lambda truth: np.where(truth[:, [1]] < 0, e_below, e_above)
    )
    noise = fit_noise_model(emulator, *stars, label_error_split=(1, 0.0))
    assert noise.label_error.shape == (2, N_IN)
    np.testing.assert_allclose(noise.label_error[:, [0, 2]], [[0.3, 0.15], [0.1, 0.05]], rtol=0.3)
    x = jnp.asarray([0.2, -0.5, 0.1], jnp.float32)
    np.testing.assert_allclose(noise.label_error_at(x), noise.label_error[0], rtol=1e-6)
    np.testing.assert_allclose(
        noise.label_error_at(x.at[1].set(0.5)), noise.label_error[1], rtol=1e-6
    )


def test_a_label_error_table_needs_its_split(tmp_path):
    with pytest.raises(DataError, match="label_error"):
        NoiseModel(tuple("abc"), np.ones(3), np.eye(3), label_error=np.ones((2, 3)))
    split = NoiseModel(
        tuple("abc"), np.ones(3), np.eye(3), label_error=np.ones((2, 3)), label_error_split=(1, 3.5)
    )
    split.save(tmp_path / "noise.json")
    loaded = NoiseModel.load(tmp_path / "noise.json")
    assert loaded.label_error_split == (1, 3.5)
    np.testing.assert_array_equal(loaded.label_error, split.label_error)


def test_label_error_is_the_unexplained_scatter_and_zero_without_references(rng):
    n = 4000
    fitted = rng.normal(size=(n, 3))
    offset = rng.normal(size=n)  # unit scatter of fitted against reference
    reference = np.column_stack([np.full(n, np.nan), fitted[:, 1] + offset, fitted[:, 2] + offset])
    variance = np.column_stack([np.ones(n), np.full(n, 0.5), np.ones(n)])
    error = label_error(fitted, variance, reference, np.full((n, 3), 0.5))
    assert error[0] == 0.0  # no star has a reference
    assert error[1] == pytest.approx(0.5, rel=0.15)  # 1 = 0.5 + 0.5^2 + e^2
    assert error[2] == 0.0  # 1 + 0.5^2 already explains more than the scatter
