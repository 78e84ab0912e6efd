import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesfm.infer.draw_pool import DrawPool, resample
from bayesfm.infer.mixture import Mixture, mixture_log_pdf

DF = 5.0


def _one_component(scale, dim=2):
    """A one-component Student-t mixture per star (one star) with the given scale."""
    return Mixture(np.zeros((1, 1)), np.zeros((1, 1, dim)), scale * np.eye(dim)[None, None])


def _draws(rng, scale, size, dim=2):
    """Student-t draws (numpy) of ``_one_component(scale)`` [1, size, dim]."""
    chi2 = rng.chisquare(DF, size=(1, size, 1))
    return scale * rng.normal(size=(1, size, dim)) / np.sqrt(chi2 / DF)


def _round(rng, scale, size, target):
    """Draws of one round and their log weights target / proposal."""
    z = _draws(rng, scale, size)
    proposal = _one_component(scale)
    return z, target.logpdf(z) - mixture_log_pdf(z, proposal, DF), proposal


@pytest.fixture
def target():
    return multivariate_normal(mean=np.zeros(2), cov=np.eye(2))


def test_rounds_from_one_proposal_keep_their_own_weights(target):
    rng = np.random.default_rng(0)
    first = _round(rng, 1.0, 200, target)
    second = _round(rng, 1.0, 300, target)
    pool = DrawPool.first(*first, DF)
    np.testing.assert_array_equal(pool.log_weights(), first[1])
    pooled = pool.add(*second)  # the mixture of one proposal with itself is that proposal
    np.testing.assert_allclose(pooled.log_weights(), np.hstack([first[1], second[1]]), atol=1e-9)
    extended = pool.extend(*second[:2])  # the same draws as one round
    assert extended.sizes == (500,) and len(extended.proposals) == 1
    np.testing.assert_array_equal(extended.log_weights(), np.hstack([first[1], second[1]]))


def test_pooled_weights_are_sound_where_a_later_round_covers_an_early_narrow_one(target):
    rng = np.random.default_rng(1)
    narrow = _round(rng, 0.25, 1000, target)
    wide = _round(rng, 1.0, 1000, target)
    alone = DrawPool.first(*narrow, DF)
    pooled = alone.add(*wide)
    assert alone.smoothed_weights()[1][0] > 0.7  # the narrow round alone is not trusted
    weights, khat = pooled.smoothed_weights()
    assert khat[0] <= 0.7 and pooled.z.shape == (1, 2000, 2) and pooled.sizes == (1000, 1000)
    # the target is normalised: the mean raw weight estimates 1; the second moments are I
    assert abs(np.mean(np.exp(pooled.log_weights())) - 1.0) < 0.05
    moments = np.einsum("s,si,sj->ij", weights[0], pooled.z[0], pooled.z[0])
    np.testing.assert_allclose(moments, np.eye(2), atol=0.12)
    draws = resample(pooled.z, weights, 500, rng)
    assert draws.shape == (1, 500, 2) and np.all(np.isin(draws[0, :, 0], pooled.z[0, :, 0]))


def test_taking_stars_keeps_their_rounds(target):
    rng = np.random.default_rng(2)
    z = np.concatenate([_draws(rng, 1.0, 50), _draws(rng, 1.0, 50)])
    two = Mixture(*(np.concatenate([a, a]) for a in _one_component(1.0)))
    log_w = target.logpdf(z) - mixture_log_pdf(z, two, DF)
    pool = DrawPool.first(z, log_w, two, DF).add(z, log_w, two)
    second = pool.take(np.array([False, True]))
    assert second.z.shape == (1, 100, 2) and len(second.proposals) == 2
    np.testing.assert_allclose(second.log_weights(), pool.log_weights()[1:], atol=1e-12)
