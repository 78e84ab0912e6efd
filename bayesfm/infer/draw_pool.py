"""Every importance round's draws, weighed together.

Without pooling a refinement round weighs only its own draws, and the target densities the
earlier rounds paid for are thrown away. The pool keeps them and weighs all draws as draws
from the mixture of the pooled rounds' proposals, each in proportion to its number of draws
(deterministic-mixture weights, Veach & Guibas 1995; as in adaptive multiple importance
sampling, Cornuet et al. 2012): a draw from a too narrow early proposal weighs
target / (mixture of the proposals), bounded wherever a later, wider proposal covers it.
On test stars, pooling the first (Laplace) round raised k-hat; pooling only the refinement
rounds did not (docs/performance.md).
"""

from dataclasses import dataclass

import arviz as az
import numpy as np
from scipy.special import logsumexp

from bayesfm.infer.mixture import Mixture, mixture_log_pdf

__all__ = ["DrawPool", "resample"]


@dataclass(frozen=True)
class DrawPool:
    """The draws of m stars still in play, every round so far.

    Attributes:
        z: Draws [m, S, d], rounds one after another.
        log_w: Each draw's log weight against its own round's proposal [m, S].
        proposals: Each round's proposal for the m stars.
        sizes: Each round's draws per star.
        df: The proposals' Student-t degrees of freedom.
    """

    z: np.ndarray
    log_w: np.ndarray
    proposals: tuple[Mixture, ...]
    sizes: tuple[int, ...]
    df: float

    @classmethod
    def first(cls, z, log_w, proposal: Mixture, df) -> "DrawPool":
        """A pool of one round: draws z [m, S, d] with log weights [m, S] from ``proposal``."""
        return cls(z, log_w, (proposal,), (z.shape[1],), df)

    def add(self, z, log_w, proposal: Mixture) -> "DrawPool":
        """The pool with one more round: draws z [m, S', d] with log weights from ``proposal``."""
        return DrawPool(
            np.concatenate([self.z, z], axis=1),
            np.concatenate([self.log_w, log_w], axis=1),
            (*self.proposals, proposal),
            (*self.sizes, z.shape[1]),
            self.df,
        )

    def extend(self, z, log_w) -> "DrawPool":
        """The pool with more draws z [m, S', d] from the last round's proposal (its round
        grows, so draws from one proposal are weighed against it alone)."""
        return DrawPool(
            np.concatenate([self.z, z], axis=1),
            np.concatenate([self.log_w, log_w], axis=1),
            self.proposals,
            (*self.sizes[:-1], self.sizes[-1] + z.shape[1]),
            self.df,
        )

    def take(self, rows) -> "DrawPool":
        """The pool of stars ``rows`` (indices or a mask) only."""
        proposals = tuple(proposal.take(rows) for proposal in self.proposals)
        return DrawPool(self.z[rows], self.log_w[rows], proposals, self.sizes, self.df)

    def log_weights(self) -> np.ndarray:
        """Deterministic-mixture log weights [m, S] of every draw (a single round's own)."""
        if len(self.proposals) == 1:
            return self.log_w
        log_q = np.stack([mixture_log_pdf(self.z, p, self.df) for p in self.proposals])
        own_round = np.repeat(np.arange(len(self.sizes)), self.sizes)
        log_target = self.log_w + log_q[own_round, :, np.arange(len(own_round))].T
        share = np.log(np.asarray(self.sizes, np.float64) / sum(self.sizes))
        return log_target - logsumexp(share[:, None, None] + log_q, axis=0)

    def smoothed_weights(self):
        """Normalised Pareto-smoothed weights [m, S] and k-hat [m]; stars without a finite
        weight get k-hat = inf."""
        log_w = self.log_weights()
        finite = np.isfinite(log_w)
        usable = finite.any(axis=1)
        floor = np.min(np.where(finite, log_w, np.inf), axis=1, keepdims=True) - 50.0
        log_w = np.where(finite, log_w, np.where(usable[:, None], floor, 0.0))
        with np.errstate(all="ignore"):  # degenerate tails give k-hat = inf or NaN: rejected
            smoothed, khat = az.psislw(log_w)
        khat = np.where(np.isnan(khat), np.inf, khat)
        weights = np.exp(smoothed)
        weights /= weights.sum(axis=1, keepdims=True)
        return weights, np.where(usable, khat, np.inf)


def resample(z, weights, size, rng):
    """Systematic resampling: ``size`` equal-weight draws per star [n, size, 5]."""
    positions = (rng.random((len(z), 1)) + np.arange(size)) / size
    cumulative = np.cumsum(weights, axis=1)
    cumulative[:, -1] = 1.0
    picks = np.stack([np.searchsorted(c, p) for c, p in zip(cumulative, positions, strict=True)])
    return np.take_along_axis(z, picks[..., None], axis=1)
