"""Trust flags against closed-form references."""

import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

from bayesfm.infer.trust import (
    TrustCriteria,
    domain_threshold,
    fit_p_value,
    outside_at,
    outside_fraction,
    trust_columns,
)


def test_fit_p_value_is_the_chi_square_survival_function():
    chi2 = np.array([3.0, 29.0, 60.0, 200.0])
    dof = np.array([4, 29, 29, 30])
    np.testing.assert_allclose(fit_p_value(chi2, dof), stats.chi2.sf(chi2, dof), rtol=1e-4)


def test_fit_p_value_of_a_student_t_noise_model_is_the_f_survival_function():
    chi2 = np.array([3.0, 29.0, 60.0, 200.0])
    dof = np.array([4, 29, 29, 30])
    expected = stats.f.sf(chi2 / dof, dof, 7.0)
    np.testing.assert_allclose(fit_p_value(chi2, dof, 7.0), expected, rtol=1e-4)


def test_domain_threshold_and_outside_fraction_of_a_normal_prior():
    prior = dist.Normal(np.zeros(5), 1.0).to_event(1)
    threshold = domain_threshold(prior, 0.01, n=200000)
    # log N(x; 0, I_5) < threshold  <=>  |x|^2 > the 99% point of chi-square(5)
    expected = stats.norm.logpdf(0.0) * 5 - 0.5 * stats.chi2.ppf(0.99, 5)
    assert threshold == pytest.approx(expected, abs=0.02)
    radius = np.sqrt(stats.chi2.ppf(0.99, 5))
    inside, outside = np.full(5, 0.5 * radius / np.sqrt(5)), np.full(5, 2 * radius / np.sqrt(5))
    draws = np.stack([np.stack([inside] * 3 + [outside]), np.stack([outside] * 3 + [inside])])
    draws[1, 0] = np.nan  # padding draws do not count
    np.testing.assert_allclose(outside_fraction(prior, draws, threshold), [0.25, 2 / 3])


def test_trusted_needs_all_three_checks():
    columns = trust_columns(
        fit_p=np.array([0.5, 1e-6, 0.5, 0.5, 0.5]),
        outside=np.array([0.0, 0.0, 0.9, 0.0, 0.0]),
        sampler_ok=np.array([True, True, True, False, True]),
        amortized_outside=np.array([False, False, False, False, True]),
        criteria=TrustCriteria(),
    )
    assert columns["fit_ok"].tolist() == [True, False, True, True, True]
    assert columns["amortized_in_domain"].tolist() == [True, True, True, True, False]
    assert columns["in_domain"].tolist() == [True, True, False, True, False]
    assert columns["trusted"].tolist() == [True, False, False, False, False]


def test_outside_at_compares_the_prior_density_at_each_point():
    prior = dist.Normal(np.zeros(5), 1.0).to_event(1)
    threshold = domain_threshold(prior, 0.01, n=200000)
    points = np.stack([np.full(5, 0.1), np.full(5, 3.0), np.full(5, np.nan)])
    assert outside_at(prior, points, threshold).tolist() == [False, True, True]
