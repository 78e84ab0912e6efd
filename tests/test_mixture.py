"""Mixture proposals: a star whose posterior has two modes gets both, weighed correctly;
refinement with one component is the weighted mean and covariance."""

from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.bayes.star_model import StarData, normalised_prior, star_model
from bayesfm.common.errors import DataError
from bayesfm.infer.importance import ImportanceConfig, run_importance
from bayesfm.infer.mixture import (
    Mixture,
    mixture_of_modes,
    refined_mixture,
    sample_mixture,
    student_t_log_pdf,
)
from bayesfm.model.emulator import Emulator
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.vocabulary import Scaling

_MEAN = np.array([5000.0, 3.0, -0.2, 0.1, 0.2])
_SD = np.array([600.0, 1.0, 0.4, 0.1, 0.2])


class _TwoModeSetup:
    """logg enters the spectrum only through (logg - 3)^2, and the prior is symmetric about
    logg 3: the posterior has two modes of equal mass, at 3 +- the true offset."""

    def __init__(self, rng, n_tokens=12):
        design = jnp.asarray(rng.normal(size=(n_tokens, 5)), jnp.float32)
        sigma = jnp.full(n_tokens, 0.03, jnp.float32)
        self.emulate = lambda x: design @ _folded((x - _MEAN) / _SD)
        names = tuple(f"t{k}" for k in range(n_tokens))
        emulator = Emulator(LABEL_INPUTS, names, lambda x: (self.emulate(x), sigma))
        self.prior = dist.MultivariateNormal(
            jnp.asarray(_MEAN, jnp.float32), jnp.diag(jnp.asarray(_SD**2, jnp.float32))
        )
        self.scaling = Scaling(_MEAN, _SD)
        self.star_model = partial(
            star_model,
            emulator=emulator,
            prior=self.prior,
            noise=NoiseModel.independent(names),
            scaling=self.scaling,
        )
        self.n_tokens, self.sigma = n_tokens, sigma
        self.proposal_setup = self  # the modes are found with the emulator itself
        self.program_key = None  # its programs are traced afresh, never stored

    def z_support(self):
        return normalised_prior(self.prior, self.scaling).support

    def star(self, truth):
        k = self.n_tokens
        return StarData(
            np.asarray(self.emulate(jnp.asarray(truth, jnp.float32)))[None],
            np.full((1, k), 0.03, np.float32),
            np.ones((1, k), bool),
            np.eye(k, dtype=np.float32)[None],
            np.asarray(self.sigma)[None],
        )


def _folded(u):
    return u.at[1].set(u[1] ** 2)


@pytest.mark.parametrize(
    "logg_starts, farthest, scout_draws",
    [((), False, 0), ((2.5, 4.5), False, 0), ((2.5, 4.5), True, 0), ((), False, 64)],
    ids=["amortized_only", "logg_starts", "farthest_logg_start", "scouted"],
)
def test_a_second_mode_is_found_only_from_the_extra_starts(rng, logg_starts, farthest, scout_draws):
    setup = _TwoModeSetup(rng)
    truth = _MEAN + np.array([0.3, 0.8, 0.2, -0.1, 0.1]) * _SD
    data = setup.star(truth)
    z_start = setup.scaling.normalise(truth)[None].astype(np.float32)  # at the upper mode
    config = ImportanceConfig(
        logg_starts=logg_starts,
        farthest_logg_start_only=farthest,
        scout_draws=scout_draws,
        scout_inflation=1.5,
    )
    result = run_importance(
        setup, data, z_start, np.ones((1, 5), np.float32), jax.random.PRNGKey(0), config
    )
    logg = setup.scaling.physical(np.asarray(result.z[0], float))[:, 1]
    upper = np.mean(logg > 3.0)
    if logg_starts or scout_draws:
        assert result.accepted[0]
        assert 0.4 < upper < 0.6  # equal masses
        for side in (logg[logg > 3], logg[logg < 3]):
            assert abs(abs(np.median(side) - 3.0) - 0.8) < 0.05
    else:
        assert upper > 0.99  # a one-mode proposal never draws the other


def test_distinct_modes_are_kept_and_duplicates_merged():
    loc = np.array([[[0.0, 0.0], [0.01, 0.0], [5.0, 0.0]]])
    cov = np.broadcast_to(0.01 * np.eye(2), (1, 3, 2, 2)).copy()
    evidence = np.array([[0.0, 0.0, np.log(3.0)]])
    mixture = mixture_of_modes(loc, cov, evidence, inflation=1.0)
    weight = np.exp(mixture.log_weight[0])
    assert weight[1] == 0.0  # the same mode as component 0
    # Laplace masses 1 : 3, with a fifth of the draws spread evenly (defensive floor)
    np.testing.assert_allclose(weight[[0, 2]], 0.8 * np.array([0.25, 0.75]) + 0.1, rtol=1e-6)
    negligible = mixture_of_modes(loc, cov, np.array([[0.0, -np.inf, -20.0]]), 1.0)
    np.testing.assert_array_equal(np.isfinite(negligible.log_weight[0]), [True, False, False])


def test_mixture_draws_follow_their_components_and_density(rng):
    mixture = Mixture(
        np.log(np.array([0.25, 0.75], np.float32)),
        np.array([[-3.0, 0.0], [3.0, 1.0]], np.float32),
        np.array([np.eye(2), 0.5 * np.eye(2)], np.float32),
    )
    z, log_q = sample_mixture(jax.random.PRNGKey(1), tuple(mixture), 5.0, 20000)
    z = np.asarray(z)
    right = z[:, 0] > 0
    assert abs(right.mean() - 0.75) < 0.015
    # Student-t with 5 degrees of freedom: variance scale^2 * 5 / 3
    np.testing.assert_allclose(z[right].std(axis=0), 0.5 * np.sqrt(5 / 3), rtol=0.08)
    expected = np.logaddexp(
        np.log(0.25) + dist.MultivariateStudentT(5.0, mixture.loc[0], mixture.chol[0]).log_prob(z),
        np.log(0.75) + dist.MultivariateStudentT(5.0, mixture.loc[1], mixture.chol[1]).log_prob(z),
    )
    np.testing.assert_allclose(log_q, expected, rtol=1e-5, atol=1e-5)


def test_refinement_of_one_component_is_the_weighted_moments(rng):
    z = rng.normal(size=(2, 400, 3))
    weights = rng.uniform(size=(2, 400))
    weights /= weights.sum(axis=1, keepdims=True)
    start = Mixture(
        np.zeros((2, 1)), np.zeros((2, 1, 3), np.float32), np.tile(np.eye(3), (2, 1, 1, 1))
    )
    refined = refined_mixture(z, weights, start, inflation=1.3, df=5.0)
    for star in range(2):
        mean = weights[star] @ z[star]
        cov = np.cov(z[star].T, aweights=weights[star], bias=True)
        np.testing.assert_allclose(refined.loc[star, 0], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            refined.chol[star, 0] @ refined.chol[star, 0].T,
            1.3**2 * cov + 1e-6 * np.eye(3),
            rtol=1e-4,
        )


def test_the_numpy_student_t_density_is_numpyros(rng):
    z = rng.normal(size=(3, 2, 7, 5))
    loc = rng.normal(size=(3, 2, 1, 5))
    a = rng.normal(size=(3, 2, 5, 5))
    chol = np.linalg.cholesky(a @ np.swapaxes(a, -1, -2) + np.eye(5))
    expected = dist.MultivariateStudentT(5.0, loc, scale_tril=chol[:, :, None]).log_prob(z)
    np.testing.assert_allclose(student_t_log_pdf(z, loc, chol, 5.0), expected, rtol=1e-5)


def test_mode_searches_count_the_starts_used():
    unscouted = ImportanceConfig(scout_draws=0)
    assert replace(unscouted, farthest_logg_start_only=False).mode_searches == 3
    assert unscouted.mode_searches == 2  # the amortized start and the farther logg
    assert replace(unscouted, logg_starts=()).mode_searches == 1
    assert replace(unscouted, scout_draws=64, scout_starts=2).mode_searches == 4
    with pytest.raises(DataError, match="scout_draws"):
        ImportanceConfig(scout_draws=-1)
