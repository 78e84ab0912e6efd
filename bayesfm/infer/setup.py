"""What a fit needs and never changes, and the one preparation of stars for every sampler.

``StarInference`` holds the frozen emulator, the prior, the noise model, the label scaling
and the amortized model. ``prepare_stars`` turns stars into the arrays a sampler takes
(``StarData``: observed tokens and covariance factor at each star's anchor) and a start
point (the amortized prediction), once, for one star or many.
"""

import functools
import hashlib
import json
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.bayes.priors import GaussianMixturePrior
from bayesfm.bayes.star_model import StarData, normalised_prior, stacked_star_data, star_model
from bayesfm.common.devices import bucket_size
from bayesfm.common.errors import DataError
from bayesfm.common.jsonio import to_json
from bayesfm.model.emulator import Emulator, a_k_scale_of, emulator_fingerprint, make_emulator
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.predict import predict
from bayesfm.model.proposal_emulator import load_proposal_emulator
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens
from bayesfm.tokens.vocabulary import Scaling

__all__ = [
    "StarInference",
    "PreparedStars",
    "prepare_stars",
    "amortized_labels",
    "in_prior",
    "one_star",
]


@dataclass(frozen=True, eq=False)
class StarInference:
    """Everything fixed across stars: emulator, prior, noise model, normalisation.

    Compared and hashed by identity, so that compiled samplers can be cached per setup."""

    model: FoundationModel
    emulator: Emulator
    prior: dist.Distribution
    noise: NoiseModel

    @classmethod
    def default(cls, model_path=None, prior=None, noise=None) -> "StarInference":
        """The shipped model with its learned prior and fitted noise model (or your own)."""
        model = FoundationModel.load(model_path)
        emulator = make_emulator(model)
        prior = GaussianMixturePrior.load().distribution() if prior is None else prior
        noise = NoiseModel.load() if noise is None else noise
        if noise.names != emulator.outputs:
            raise DataError("the noise model covers other tokens than the emulator predicts")
        return cls(model, emulator, prior, noise)

    @property
    def scaling(self) -> Scaling:
        """The normalisation of the labels the sampler works in (the vocabulary's)."""
        return self.model.vocabulary.scaling(self.emulator.inputs)

    @property
    def star_model(self):
        """``star_model`` with everything but the star's data bound (arrays only remain)."""
        return partial(
            star_model,
            emulator=self.emulator,
            prior=self.prior,
            noise=self.noise,
            scaling=self.scaling,
        )

    @functools.cached_property
    def proposal_setup(self) -> "StarInference":
        """This setup with the proposal emulator distilled from its model
        (``bayesfm.model.proposal_emulator``) in place of the emulator, or this setup itself
        where none was. For finding modes only: draws are weighed with ``emulator``."""
        out_scaling = self.model.vocabulary.scaling(self.emulator.outputs)
        fast = load_proposal_emulator(
            emulator_fingerprint(self.model), self.emulator, self.scaling, out_scaling
        )
        return self if fast is None else replace(self, emulator=fast)

    def z_support(self):
        return normalised_prior(self.prior, self.scaling).support

    @functools.cached_property
    def program_key(self) -> str | None:
        """What the programs built on this setup close over (``fingerprint`` and the
        emulator's), as ``bayesfm.common.stored_programs`` keys them; None where the emulator
        has no fingerprint."""
        if self.emulator.fingerprint is None:
            return None
        return hashlib.sha256((self.fingerprint() + self.emulator.fingerprint).encode()).hexdigest()

    def fingerprint(self) -> str:
        """SHA-256 of what shapes a posterior: weights, vocabulary, the emulator's context
        errors and sigma factors, prior and noise model.

        Resumable runs record it, so that results from another model are never mixed in.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.model.vocabulary.to_dict(), sort_keys=True).encode())
        emulator_info = {k: v for k, v in self.model.info.items() if k.startswith("emulator_")}
        digest.update(json.dumps(emulator_info, sort_keys=True).encode())
        digest.update(json.dumps(to_json(self.noise), sort_keys=True).encode())
        digest.update(type(self.prior).__name__.encode())
        # numpyro's leaf order can differ between processes: hash the sorted leaf digests
        leaves = jax.tree_util.tree_leaves((self.model.params, self.prior))
        for leaf_digest in sorted(_array_digest(leaf) for leaf in leaves):
            digest.update(leaf_digest.encode())
        return digest.hexdigest()


def _array_digest(array) -> str:
    array = np.ascontiguousarray(array, dtype=np.float64)
    return hashlib.sha256(f"{array.shape}".encode() + array.tobytes()).hexdigest()


def amortized_labels(setup: StarInference, stars: StarTokens):
    """The transformer's spectra -> labels prediction (mean, sigma), each [N, 5] physically.

    The mean is moved inside a bounded prior (e.g. a uniform box) so that it can start a
    sampler or centre a proposal. The predicted a_k is put on the scale the emulator's A_K
    input has (ak_targ's, where the model records one: ``a_k_scale_of``).
    """
    inputs = list(setup.emulator.inputs)
    observables = [n for n in setup.emulator.outputs if n in stars.names]
    # one star at a time in the runners: do not pad it to a large batch; a catalogue's last,
    # shorter chunk: padded to a power of two, so that it rarely needs a program of its own
    batch = min(bucket_size(len(stars)), 512)
    mean, sigma = predict(setup.model, stars, inputs, context=observables, batch_size=batch)
    scale = a_k_scale_of(setup.model)
    if scale is not None and "a_k" in inputs:
        a_k = inputs.index("a_k")
        mean[:, a_k] = scale.true_a_k(mean[:, a_k])
        sigma[:, a_k] *= scale.slope
    return _into_support(setup.prior, mean), sigma


class PreparedStars(NamedTuple):
    """Stars ready for a sampler.

    Attributes:
        data: ``StarData`` stacked over the usable stars (None if there are none).
        rows: The usable stars' rows in the input, in order.
        problems: Row -> why that star cannot be fitted.
        start: Amortized labels [n_usable, 5] (physical): anchor and start point.
        start_sigma: Their amortized sigma [n_usable, 5].
    """

    data: StarData | None
    rows: list
    problems: dict
    start: np.ndarray
    start_sigma: np.ndarray


def prepare_stars(setup: StarInference, stars: StarTokens, anchors=None) -> PreparedStars:
    """The one preparation of stars for every sampler: ``StarData`` of every usable star,
    anchored at its amortized prediction, which is also its start point.

    ``anchors``: physical labels [len(stars), 5] at which to take each star's emulator sigma
    instead (known labels, or the true labels of simulated stars).

    A star without usable tokens does not stop the others: it is left out of ``data`` and
    its reason recorded in ``problems``.
    """
    outputs = [n for n in setup.emulator.outputs if n in stars.names]
    has_tokens = np.isfinite(stars.values[:, stars.index(outputs)]).any(axis=1)
    mean = np.full((len(stars), len(LABEL_INPUTS)), np.nan, np.float32)
    sigma = np.full_like(mean, np.nan)
    if has_tokens.any():
        rows = np.flatnonzero(has_tokens)
        mean[rows], sigma[rows] = amortized_labels(setup, stars.take(rows))
    if anchors is None:
        anchors = mean
    elif np.shape(anchors) != mean.shape:
        raise DataError(
            f"anchors have shape {np.shape(anchors)}; one row of {LABEL_INPUTS} per star"
        )
    elif not np.isfinite(anchors).all():
        raise DataError("anchors hold NaN or inf; give finite labels for every star")
    data, usable, problems = stacked_star_data(
        stars, range(len(stars)), setup.emulator, setup.noise, anchors
    )
    return PreparedStars(data, usable, problems, mean[usable], sigma[usable])


def one_star(setup: StarInference, stars: StarTokens, row: int):
    """(``StarData`` of star ``row``, its amortized labels [5]) from ``prepare_stars``; a
    DataError says why the star cannot be fitted."""
    prepared = prepare_stars(setup, stars.take([row]))
    if prepared.problems:
        raise DataError(prepared.problems[0])
    return jax.tree_util.tree_map(lambda a: a[0], prepared.data), prepared.start[0]


def _into_support(prior, x):
    """Clip points [..., 5] to 1% inside a bounded prior's edges; unbounded priors: unchanged."""
    low = getattr(prior.support, "lower_bound", None)
    high = getattr(prior.support, "upper_bound", None)
    if low is None or high is None:
        return x
    low, high = np.asarray(low), np.asarray(high)
    return np.clip(x, low + 0.01 * (high - low), high - 0.01 * (high - low))


def in_prior(prior, x, traced=False):
    """Whether x lies where the prior has positive density."""
    x = jnp.asarray(x, jnp.float32)
    inside = jnp.all(prior.support(x))
    if traced:
        return inside & jnp.isfinite(prior.log_prob(x))
    return bool(inside) and bool(jnp.isfinite(prior.log_prob(x)))
