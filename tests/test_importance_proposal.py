"""The importance sampler's Laplace proposal falls back to the amortized one where the
Hessian cannot give a covariance, instead of failing the whole chunk."""

import numpy as np

from bayesfm.infer.importance import proposal_covariance


def test_proposal_is_laplace_where_the_hessian_is_good_and_amortized_elsewhere(rng):
    a = rng.normal(size=(5, 5))
    good = a @ a.T + 5 * np.eye(5)
    singular = np.outer(a[0], a[0]) + 1e-12 * np.eye(5)  # positive, numerically singular
    indefinite = np.diag([4.0, 3.0, 2.0, 1.0, -1.0])
    broken = np.full((5, 5), np.nan)
    hessian = np.stack([good, singular, indefinite, broken])
    mode = rng.normal(size=(4, 5))
    z_start, z_sigma = rng.normal(size=(4, 5)), rng.uniform(0.5, 2.0, (4, 5))
    loc, cov = proposal_covariance(mode, hessian, z_start, z_sigma)
    np.testing.assert_allclose(loc[0], mode[0])
    np.testing.assert_allclose(cov[0], np.linalg.inv(good), rtol=1e-8)
    for i in (1, 2, 3):
        np.testing.assert_array_equal(loc[i], z_start[i])
        np.testing.assert_allclose(cov[i], np.diag(z_sigma[i] ** 2))
    np.linalg.cholesky(cov)  # every proposal is positive definite
