"""The importance sampler: its Laplace proposal falls back to the amortized one where the
Hessian cannot give a covariance, and its draws match a posterior known in closed form."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.bayes.star_model import StarData, normalised_prior, star_model
from bayesfm.common.devices import in_star_blocks
from bayesfm.common.errors import DataError
from bayesfm.infer.importance import ImportanceConfig, run_importance, weigh_stars
from bayesfm.infer.mixture import mixture_of_modes
from bayesfm.infer.mode import POLISH_STEPS, laplace_proposal, proposal_covariance
from bayesfm.infer.mode_search import mode_one_star, mode_search
from bayesfm.model.emulator import Emulator
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.vocabulary import Scaling


def test_proposal_is_laplace_where_the_hessian_is_good_and_amortized_elsewhere(rng):
    a = rng.normal(size=(5, 5))
    good = a @ a.T + 5 * np.eye(5)
    singular = np.outer(a[0], a[0]) + 1e-12 * np.eye(5)  # positive, numerically singular
    indefinite = np.diag([4.0, 3.0, 2.0, 1.0, -1.0])
    broken = np.full((5, 5), np.nan)
    hessian = np.stack([good, singular, indefinite, broken])
    mode = rng.normal(size=(4, 5))
    z_start, z_sigma = rng.normal(size=(4, 5)), rng.uniform(0.5, 2.0, (4, 5))
    loc, cov, laplace = proposal_covariance(mode, hessian, z_start, z_sigma)
    np.testing.assert_array_equal(laplace, [True, False, False, False])
    np.testing.assert_allclose(loc[0], mode[0])
    np.testing.assert_allclose(cov[0], np.linalg.inv(good), rtol=1e-8)
    for i in (1, 2, 3):
        np.testing.assert_array_equal(loc[i], z_start[i])
        np.testing.assert_allclose(cov[i], np.diag(z_sigma[i] ** 2))
    np.linalg.cholesky(cov)  # every proposal is positive definite


class _LinearSetup:
    """An inference setup whose posterior is Gaussian in closed form: a linear emulator,
    a Gaussian prior and independent Gaussian tokens (``posterior``; with a ``warp`` of the
    standardised labels before the design matrix, the posterior is no longer Gaussian)."""

    def __init__(self, rng, n_tokens=12, warp=lambda u: u, emulator_shift=0.0, traces=None):
        self.design = rng.normal(size=(n_tokens, 5))
        self.offset = rng.normal(size=n_tokens)
        self.sigma = np.full(n_tokens, 0.3)
        self.prior_mean, self.prior_sd = (
            np.array([5000.0, 3.0, -0.2, 0.1, 0.2]),
            np.array([600.0, 1.0, 0.4, 0.1, 0.2]),
        )
        self.scaling = Scaling(self.prior_mean + 0.1 * self.prior_sd, 0.8 * self.prior_sd)
        design, offset, sigma = (
            jnp.asarray(a, jnp.float32) for a in (self.design, self.offset, self.sigma)
        )
        # the emulator takes standardised labels so that the design matrix is well scaled
        mean_sd = (jnp.asarray(self.prior_mean), jnp.asarray(self.prior_sd))
        names = tuple(f"t{k}" for k in range(n_tokens))
        emulator = Emulator(
            LABEL_INPUTS,
            names,
            lambda x: (
                design @ warp((x - mean_sd[0]) / mean_sd[1]) + offset + emulator_shift,
                sigma,
            ),
        )
        if traces is not None:  # record each trace of the emulator into this list
            plain = emulator.emulate
            emulator = Emulator(LABEL_INPUTS, names, lambda x: traces.append(1) or plain(x))
        self.prior = dist.MultivariateNormal(
            jnp.asarray(self.prior_mean, jnp.float32),
            jnp.diag(jnp.asarray(self.prior_sd**2, jnp.float32)),
        )
        self.star_model = partial(
            star_model,
            emulator=emulator,
            prior=self.prior,
            noise=NoiseModel.independent(names),
            scaling=self.scaling,
        )
        self.proposal_setup = self  # the modes are found with the emulator itself
        self.program_key = None  # its programs are traced afresh, never stored

    def z_support(self):
        return normalised_prior(self.prior, self.scaling).support

    def posterior(self, observed, errors):
        """Exact posterior mean [5] and covariance [5, 5] in the normalised labels z."""
        a = self.design / self.prior_sd[None]  # d mean / d x
        b = self.offset - a @ self.prior_mean
        precision_noise = 1.0 / (errors**2 + self.sigma**2)
        prior_precision = np.diag(1.0 / self.prior_sd**2)
        cov = np.linalg.inv(prior_precision + a.T @ (precision_noise[:, None] * a))
        mean = cov @ (prior_precision @ self.prior_mean + a.T @ (precision_noise * (observed - b)))
        loc, scale = self.scaling
        return (mean - loc) / scale, cov / np.outer(scale, scale)


def _linear_stars(setup, rng, n_stars=3):
    """Observed tokens [n, k] and ``StarData`` of stars drawn from the linear setup's prior."""
    k = len(setup.sigma)
    truth = setup.prior_mean + setup.prior_sd * rng.normal(size=(n_stars, 5))
    errors = np.full((n_stars, k), 0.2)
    clean = ((truth - setup.prior_mean) / setup.prior_sd) @ setup.design.T + setup.offset
    observed = clean + np.sqrt(errors**2 + setup.sigma**2) * rng.normal(size=(n_stars, k))
    data = StarData(
        observed.astype(np.float32),
        errors.astype(np.float32),
        np.ones((n_stars, k), bool),
        np.broadcast_to(np.eye(k, dtype=np.float32), (n_stars, k, k)).copy(),
        np.broadcast_to(setup.sigma.astype(np.float32), (n_stars, k)).copy(),
    )
    return observed, errors, data


def test_quasi_newton_rounds_reach_the_mode_newton_reaches(rng):
    setup = _LinearSetup(rng, warp=lambda u: u + 0.3 * u**3)  # a skewed, non-Gaussian posterior
    _, _, data = _linear_stars(setup, rng, n_stars=4)
    z_start = np.zeros((4, 5), np.float32)
    newton = jax.vmap(mode_one_star(setup, rounds=40, quasi_steps=0))(z_start, data)
    quasi = jax.vmap(mode_one_star(setup, rounds=3, quasi_steps=19))(z_start, data)
    np.testing.assert_allclose(quasi[0], newton[0], atol=1e-3)
    np.testing.assert_allclose(quasi[2], newton[2], rtol=1e-5)
    one_round = jax.vmap(mode_one_star(setup, rounds=1, quasi_steps=0))(z_start, data)
    assert np.all(np.asarray(one_round[2]) > np.asarray(newton[2]) + 1e-3)  # not there in one step


def test_the_mode_search_in_blocks_of_stars_matches_one_batch(rng):
    setup = _LinearSetup(rng, warp=lambda u: u + 0.3 * u**3)
    _, _, data = _linear_stars(setup, rng, n_stars=5)
    z_start = (0.3 * rng.normal(size=(5, 5))).astype(np.float32)
    program = jax.jit(jax.vmap(mode_one_star(setup, rounds=2, quasi_steps=5)))
    whole = program(z_start, data)
    blocked = in_star_blocks(program, (z_start, data), 5, 2)
    for a, b in zip(whole, blocked, strict=True):
        assert len(b) == 5  # batch sizes round differently: agreement to float32 noise
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert program._cache_size() == 2  # all five at once, and every block of two (one padded)


def test_one_compiled_search_serves_any_numbers_of_rounds_and_steps(rng):
    setup = _LinearSetup(rng, warp=lambda u: u + 0.3 * u**3)
    _, _, data = _linear_stars(setup, rng, n_stars=3)
    z_start = (0.3 * rng.normal(size=(3, 5))).astype(np.float32)
    program = jax.jit(jax.vmap(mode_search(setup), in_axes=(0, 0, None, None)))
    for rounds, steps in ((2, 5), (1, 3)):
        searched = program(z_start, data, np.int32(rounds), np.int32(steps))
        fixed = jax.vmap(mode_one_star(setup, rounds, steps))(z_start, data)
        for a, b in zip(searched, fixed, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # jit against eager
    assert program._cache_size() == 1


def test_neither_the_evaluation_block_nor_one_by_one_changes_a_weight(rng):
    setup = _LinearSetup(rng)
    _, _, data = _linear_stars(setup, rng, n_stars=3)
    z = np.zeros((3, 5), np.float32)
    proposal = mixture_of_modes(
        z[:, None], np.broadcast_to(np.eye(5), (3, 1, 5, 5)), np.zeros((3, 1)), 1.2
    )
    key, rows = jax.random.PRNGKey(1), np.arange(3)
    whole = weigh_stars(setup, data, rows, proposal, key, 100, 5.0, block=(8, 100))
    for one_by_one in (False, True):
        blocked = weigh_stars(
            setup, data, rows, proposal, key, 100, 5.0, block=(1, 32), one_by_one=one_by_one
        )
        for a, b in zip(whole, blocked, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "rounds, pooling",
    [(1, "none"), (3, "none"), (3, "refinements"), (3, "all")],
    ids=["first_round", "refined_rounds", "pooled_refinements", "all_rounds_pooled"],
)
def test_importance_sampling_recovers_an_analytic_gaussian_posterior(rng, rounds, pooling):
    setup = _LinearSetup(rng)
    n_stars = 3
    observed, errors, data = _linear_stars(setup, rng, n_stars)
    # start the proposal away from the answer: the mode search and refinements must find it
    z_start = np.zeros((n_stars, 5), np.float32)
    config = ImportanceConfig(min_rounds=rounds, pool_rounds=pooling)
    result = run_importance(
        setup, data, z_start, np.ones((n_stars, 5), np.float32), jax.random.PRNGKey(0), config
    )
    expected = config.num_draws + config.refine_draws * (rounds - 1)
    np.testing.assert_array_equal(result.evaluations, expected)
    assert result.accepted.all()
    for star in range(n_stars):
        mean, cov = setup.posterior(observed[star], errors[star])
        sd = np.sqrt(np.diag(cov))
        draws = np.asarray(result.z[star], float)
        assert np.all(np.abs(draws.mean(axis=0) - mean) < 0.15 * sd)
        np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.12)


def _with_a_biased_proposal_emulator():
    """A linear setup whose proposal setup is the same but for an emulator off by 0.6 in every
    token (its posterior is elsewhere), and the list its emulator's traces go into."""
    setup, traces = _LinearSetup(np.random.default_rng(7)), []
    setup.proposal_setup = _LinearSetup(np.random.default_rng(7), emulator_shift=0.6, traces=traces)
    return setup, traces


def test_modes_searched_with_a_biased_proposal_emulator_still_give_the_exact_posterior():
    setup, traces = _with_a_biased_proposal_emulator()
    observed, errors, data = _linear_stars(setup, np.random.default_rng(8))
    n_stars = len(observed)
    start, start_sigma = np.zeros((n_stars, 5), np.float32), np.ones((n_stars, 5), np.float32)
    proposal = laplace_proposal(setup, data, start, start_sigma, ImportanceConfig())
    modes = proposal.mixture.main()[0]
    assert traces  # the proposal emulator searched
    result = run_importance(setup, data, start, start_sigma, jax.random.PRNGKey(0))
    assert result.accepted.all()
    for star in range(n_stars):
        mean, cov = setup.posterior(observed[star], errors[star])
        biased_mean, _ = setup.posterior(observed[star] - 0.6, errors[star])
        sd = np.sqrt(np.diag(cov))
        assert np.max(np.abs(biased_mean - mean) / sd) > 1.0  # the proposal emulator's is off
        np.testing.assert_allclose(modes[star], mean, atol=1e-3)  # one Newton round from it
        draws = np.asarray(result.z[star], float)
        # within four Monte Carlo errors (at least 100 effective draws: 0.4 sd at most)
        assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sd / np.sqrt(result.ess[star]))
        np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.2)


@pytest.mark.parametrize("shift, polished", [(0.0, 0), (5.0, 3)])
def test_a_proposal_emulators_mode_at_the_emulators_own_is_not_polished_again(shift, polished):
    setup = _LinearSetup(np.random.default_rng(7))
    setup.proposal_setup = _LinearSetup(np.random.default_rng(7), emulator_shift=shift)
    _, _, data = _linear_stars(setup, np.random.default_rng(8))
    start = np.zeros((3, 5), np.float32)
    config = ImportanceConfig()
    mixture, evaluations = laplace_proposal(setup, data, start, np.ones_like(start), config)
    searches = config.mode_rounds * (1 + config.quasi_newton_steps)
    # exact: every other start ends at the main mode; off by 5 in every token: none does
    polishes = 3 * polished * (1 + POLISH_STEPS)
    assert evaluations["mode_gradients"] == 3 * searches + polishes
    assert evaluations["proposal_emulator_mode_gradients"] == 3 * 3 * searches
    assert np.isfinite(mixture.log_weight[:, 0]).all()


def test_without_the_proposal_emulator_the_modes_are_searched_with_the_emulator():
    setup, traces = _with_a_biased_proposal_emulator()
    _, _, data = _linear_stars(setup, np.random.default_rng(8))
    start = np.zeros((3, 5), np.float32)
    config = ImportanceConfig(proposal_emulator=False)
    laplace_proposal(setup, data, start, np.ones_like(start), config)
    assert not traces


@pytest.mark.parametrize("top_up", [0, 1000])
def test_a_star_short_only_of_ess_gets_more_draws_from_its_last_proposal(rng, top_up):
    setup = _LinearSetup(rng)
    observed, errors, data = _linear_stars(setup, rng, 2)
    # 500 draws cannot reach an ESS of 600; sound weights, so only the top-up can pass them
    config = ImportanceConfig(refinements=0, min_ess=600.0, top_up_draws=top_up)
    z_start = np.zeros((2, 5), np.float32)
    result = run_importance(
        setup, data, z_start, np.ones((2, 5), np.float32), jax.random.PRNGKey(1), config
    )
    np.testing.assert_array_equal(result.evaluations, 500 + top_up)
    assert (result.khat <= config.max_khat).all()
    assert result.accepted.all() == bool(top_up)
    if top_up:
        assert (result.ess > 600).all()
        for star in range(2):
            mean, cov = setup.posterior(observed[star], errors[star])
            draws = np.asarray(result.z[star], float)
            assert np.all(np.abs(draws.mean(axis=0) - mean) < 0.15 * np.sqrt(np.diag(cov)))


def test_an_unknown_pooling_is_refused():
    with pytest.raises(DataError, match="unknown pool_rounds 'some'"):
        ImportanceConfig(pool_rounds="some")
