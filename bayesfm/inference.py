"""Runners: NUTS and SVI for one star at a time, returning ArviZ InferenceData.

``StarInference`` holds what a fit needs and never changes: the frozen emulator, the
prior, the noise model and the amortized model used for initialisation. ``NutsRunner``
keeps one compiled ``MCMC`` (``jit_model_args=True``), so the second star does not
recompile.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from functools import partial

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO, autoguide
from numpyro.infer.util import log_density, log_likelihood

from .diagnostics import ConvergenceCriteria, quiet_arviz, summarise
from .emulator import LABEL_INPUTS, Emulator, make_emulator
from .errors import DataError
from .foundation_model import FoundationModel
from .likelihood import NoiseModel
from .models import StarData, normalised_prior, stacked_star_data, star_data, star_model
from .predict import predict
from .priors import GaussianMixturePrior
from .star_tokens import StarTokens

__all__ = ["StarInference", "NutsRunner", "run_svi", "amortized_labels", "stars_data", "GUIDES"]

# Gradients for NUTS in full float32 precision: TF32 matmuls on GPUs break convergence.
jax.config.update("jax_default_matmul_precision", "highest")

GUIDES = {
    "normal": autoguide.AutoNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "iaf": autoguide.AutoIAFNormal,
}


@dataclass(frozen=True)
class StarInference:
    """Everything fixed across stars: emulator, prior, noise model, normalisation."""

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
    def loc(self):
        return self.model.vocabulary.loc[self.model.vocabulary.index(self.emulator.inputs)]

    @property
    def scale(self):
        return self.model.vocabulary.scale[self.model.vocabulary.index(self.emulator.inputs)]

    @property
    def star_model(self):
        """``star_model`` with everything but the star's data bound (arrays only remain)."""
        return partial(
            star_model,
            emulator=self.emulator,
            prior=self.prior,
            noise=self.noise,
            loc=self.loc,
            scale=self.scale,
        )

    def z_support(self):
        return normalised_prior(self.prior, self.loc, self.scale).support

    def fingerprint(self) -> str:
        """SHA-256 of what shapes a posterior: weights, vocabulary, prior and noise model.

        Resumable runs record it, so that results from another model are never mixed in.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.model.vocabulary.to_dict(), sort_keys=True).encode())
        digest.update(f"{type(self.prior).__name__} {self.noise.names}".encode())
        noise = (self.noise.error_scale, self.noise.correlation, self.noise.inflation)
        # numpyro's leaf order can differ between processes: hash the sorted leaf digests
        leaves = jax.tree_util.tree_leaves((self.model.params, self.prior, noise))
        for leaf_digest in sorted(_array_digest(leaf) for leaf in leaves):
            digest.update(leaf_digest.encode())
        return digest.hexdigest()


def _array_digest(array) -> str:
    array = np.ascontiguousarray(array, dtype=np.float64)
    return hashlib.sha256(f"{array.shape}".encode() + array.tobytes()).hexdigest()


def amortized_labels(setup: StarInference, stars: StarTokens):
    """The transformer's spectra -> labels prediction (mean, sigma), each [N, 5] physically.

    The mean is moved inside a bounded prior (e.g. a uniform box) so that it can start a
    sampler or centre a proposal.
    """
    observables = [n for n in setup.emulator.outputs if n in stars.names]
    # one star at a time in the runners: do not pad it to a large batch
    batch = min(len(stars), 512)
    mean, sigma = predict(
        setup.model, stars, list(setup.emulator.inputs), context=observables, batch_size=batch
    )
    return _into_support(setup.prior, mean), sigma


def stars_data(setup: StarInference, stars: StarTokens, anchors=None):
    """``StarData`` of every usable star, anchored at its amortized prediction.

    ``anchors``: physical labels [len(stars), 5] at which to take each star's emulator sigma
    instead (known labels, or the true labels of simulated stars).

    Returns:
        (data stacked over usable rows or None, usable rows, {row: problem},
        amortized mean [n_usable, 5], amortized sigma [n_usable, 5]).
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
    return data, usable, problems, mean[usable], sigma[usable]


def _initial_z(setup: StarInference, x0, num_chains, key, source):
    """Per-chain unconstrained starting points near x0, inside the prior's support."""
    x0 = np.asarray(x0, float)
    if not _in_prior(setup.prior, x0):
        raise DataError(
            f"source {source}: starting labels {dict(zip(LABEL_INPUTS, x0.round(3), strict=True))} "
            "lie outside the prior's support; widen the prior or give a start inside it"
        )
    z0 = (x0 - setup.loc) / setup.scale
    jitter = 0.02 * jax.random.normal(key, (num_chains, len(z0)))
    z = jnp.asarray(z0)[None] + jitter
    inside = jax.vmap(lambda zi: _in_prior(setup.prior, setup.loc + setup.scale * zi, traced=True))(
        z
    )
    z = jnp.where(inside[:, None], z, jnp.asarray(z0)[None])
    return dist.biject_to(setup.z_support()).inv(z)


class NutsRunner:
    """NUTS for one star at a time with a reusable compiled sampler.

    After warm-up the chains draw ``num_samples`` each; while the draws miss ``criteria``
    (R-hat, bulk ESS, divergences) they go on in further blocks of ``num_samples``, up to
    ``max_samples`` per chain (default: five blocks). A posterior with a minor second mode
    (the dwarf/giant ambiguity of low-resolution spectra) mixes slowly and needs the longer
    chains; an easy one stops after the first block.
    """

    def __init__(
        self,
        setup: StarInference,
        num_warmup=400,
        num_samples=600,
        num_chains=2,
        target_accept=0.85,
        max_samples=None,
        criteria=ConvergenceCriteria(),
        progress=False,
    ):
        self.setup = setup
        self.max_samples = 5 * num_samples if max_samples is None else max_samples
        if self.max_samples < num_samples:
            raise ValueError(f"max_samples ({max_samples}) is below num_samples ({num_samples})")
        self.criteria = criteria
        chain_method = "parallel" if jax.local_device_count() >= num_chains else "vectorized"
        self.mcmc = MCMC(
            NUTS(setup.star_model, target_accept_prob=target_accept, dense_mass=True),
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            chain_method=chain_method,
            jit_model_args=True,
            progress_bar=progress,
        )

    def run(self, stars: StarTokens, row: int, key, start=None) -> az.InferenceData:
        """Posterior of star ``row``; ``start``: physical labels [5] (default: amortized)."""
        setup, mcmc = self.setup, self.mcmc
        anchor = amortized_labels(setup, stars.take([row]))[0][0]
        data = star_data(stars, row, setup.emulator, setup.noise, anchor)
        start = anchor if start is None else start
        init_key, run_key, pp_key = jax.random.split(key, 3)
        init = _initial_z(setup, start, mcmc.num_chains, init_key, stars.source_id[row])
        seconds, blocks = 0.0, []
        mcmc.post_warmup_state = None  # a new star warms up afresh
        while True:
            t0 = time.perf_counter()
            mcmc.run(run_key, data, init_params={"z": init})
            jax.block_until_ready(mcmc.get_samples())
            seconds += time.perf_counter() - t0
            pp_key, block_key = jax.random.split(pp_key)
            blocks.append(self._block_idata(data, block_key))
            idata = blocks[0] if len(blocks) == 1 else az.concat(*blocks, dim="draw")
            drawn = len(blocks) * mcmc.num_samples
            if (
                drawn + mcmc.num_samples > self.max_samples
                or summarise(idata, self.criteria)[1]["converged"]
            ):
                break
            mcmc.post_warmup_state = mcmc.last_state
            run_key = mcmc.post_warmup_state.rng_key
        return _finish(idata, data, stars.source_id[row], "nuts", seconds)

    def _block_idata(self, data, pp_key):
        """The last run's draws with their posterior-predictive replicates."""
        mcmc = self.mcmc
        replicated = Predictive(
            self.setup.star_model, posterior_samples=mcmc.get_samples(), return_sites=["obs"]
        )(pp_key, data, replicate=True)
        return az.from_numpyro(
            mcmc,
            posterior_predictive={
                "obs": np.asarray(replicated["obs"]).reshape(mcmc.num_chains, -1, data.mask.size)
            },
            coords={"token": list(self.setup.emulator.outputs), "label": list(LABEL_INPUTS)},
            dims={"obs": ["token"], "z": ["label"]},
        )


def _into_support(prior, x):
    """Clip points [..., 5] to 1% inside a bounded prior's edges; unbounded priors: unchanged."""
    low = getattr(prior.support, "lower_bound", None)
    high = getattr(prior.support, "upper_bound", None)
    if low is None or high is None:
        return x
    low, high = np.asarray(low), np.asarray(high)
    return np.clip(x, low + 0.01 * (high - low), high - 0.01 * (high - low))


def _in_prior(prior, x, traced=False):
    """Whether x lies where the prior has positive density."""
    x = jnp.asarray(x, jnp.float32)
    inside = jnp.all(prior.support(x))
    if traced:
        return inside & jnp.isfinite(prior.log_prob(x))
    return bool(inside) and bool(jnp.isfinite(prior.log_prob(x)))


def run_svi(
    setup: StarInference,
    stars: StarTokens,
    row: int,
    key,
    guide="normal",
    num_steps=2000,
    num_samples=1000,
    learning_rate=0.01,
) -> az.InferenceData:
    """Variational posterior of star ``row`` with an AutoNormal, AutoMultivariateNormal or
    AutoIAFNormal guide (``guide`` = "normal", "mvn" or "iaf")."""
    if guide not in GUIDES:
        raise DataError(f"unknown guide {guide!r}; choose one of {sorted(GUIDES)}")
    start = amortized_labels(setup, stars.take([row]))[0][0]
    data = star_data(stars, row, setup.emulator, setup.noise, start)
    z0 = (np.asarray(start) - setup.loc) / setup.scale
    guide_fn = GUIDES[guide](
        setup.star_model, init_loc_fn=numpyro.infer.init_to_value(values={"z": jnp.asarray(z0)})
    )
    svi = SVI(setup.star_model, guide_fn, numpyro.optim.Adam(learning_rate), Trace_ELBO())
    fit_key, draw_key, pp_key = jax.random.split(key, 3)
    t0 = time.perf_counter()
    result = svi.run(fit_key, num_steps, data, progress_bar=False)
    z, log_guide = _guide_draws(guide_fn, result.params, data, draw_key, num_samples)
    samples = Predictive(
        setup.star_model, posterior_samples={"z": z}, return_sites=["z", *LABEL_INPUTS]
    )(draw_key, data)
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - t0
    replicated = Predictive(
        setup.star_model, posterior_samples={"z": samples["z"]}, return_sites=["obs"]
    )(pp_key, data, replicate=True)
    loglik = log_likelihood(setup.star_model, {"z": samples["z"]}, data)["obs"]
    log_joint = _log_joint(setup, data, samples["z"])
    _, khat = az.psislw(np.asarray(log_joint - log_guide, np.float64))
    with quiet_arviz():
        idata = az.from_dict(
            posterior={k: np.asarray(v)[None] for k, v in samples.items()},
            posterior_predictive={"obs": np.asarray(replicated["obs"])[None]},
            log_likelihood={"obs": np.asarray(loglik)[None]},
            observed_data={"obs": np.asarray(data.values)},
            sample_stats={"lp": np.asarray(log_joint)[None]},
            coords={"token": list(setup.emulator.outputs), "label": list(LABEL_INPUTS)},
            dims={"obs": ["token"], "z": ["label"]},
        )
    idata.posterior.attrs.update(
        {"svi_khat": float(khat), "elbo_settled": int(_elbo_settled(np.asarray(result.losses)))}
    )
    return _finish(idata, data, stars.source_id[row], f"svi-{guide}", seconds)


def _guide_draws(guide_fn, params, data, key, n):
    """(z draws [n, 5], their log guide density [n]): every sample site of the guide's trace
    counts, so auxiliary latents and Jacobians of multivariate guides are included."""
    handlers = numpyro.handlers
    guide = handlers.substitute(guide_fn, data=params)

    def one(k):
        trace = handlers.trace(handlers.seed(guide, k)).get_trace(data)
        sites = [site for site in trace.values() if site["type"] == "sample"]
        log_q = sum(jnp.sum(site["fn"].log_prob(site["value"])) for site in sites)
        return trace["z"]["value"], log_q

    return jax.vmap(one)(jax.random.split(key, n))


def _elbo_settled(losses, tolerance=1.0) -> bool:
    """Whether the mean loss of the last tenth of the steps is within ``tolerance`` nats of
    the tenth before it (the ELBO no longer improving)."""
    tenth = max(len(losses) // 10, 1)
    last, before = losses[-tenth:], losses[-2 * tenth : -tenth]
    return bool(np.all(np.isfinite(last)) and abs(np.mean(before) - np.mean(last)) <= tolerance)


def _log_joint(setup, data, z_draws):
    return jax.vmap(lambda z: log_density(setup.star_model, (data,), {}, {"z": z})[0])(z_draws)


def _finish(idata, data: StarData, source_id, method, seconds):
    """Missing tokens become NaN in observed_data; provenance goes into the attributes."""
    observed = idata.observed_data["obs"]
    idata.observed_data["obs"] = observed.where(np.asarray(data.mask))
    idata.posterior.attrs.update(
        {"source_id": str(source_id), "method": method, "sampling_seconds": float(seconds)}
    )
    return idata
