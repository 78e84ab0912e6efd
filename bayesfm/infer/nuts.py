"""NUTS for one star at a time, with a reusable compiled sampler."""

import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, Predictive
from numpyro.infer.util import log_likelihood

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision
from bayesfm.common.errors import DataError
from bayesfm.infer.diagnostics import ConvergenceCriteria, summarise
from bayesfm.infer.idata import finish
from bayesfm.infer.settings import ONE_STAR_NUTS, NutsConfig
from bayesfm.infer.setup import StarInference, in_prior, one_star
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["NutsRunner"]


def _initial_z(setup: StarInference, x0, num_chains, key, source):
    """Per-chain unconstrained starting points near x0, inside the prior's support."""
    x0 = np.asarray(x0, float)
    if not in_prior(setup.prior, x0):
        raise DataError(
            f"source {source}: starting labels {dict(zip(LABEL_INPUTS, x0.round(3), strict=True))} "
            "lie outside the prior's support; widen the prior or give a start inside it"
        )
    z0 = setup.scaling.normalise(x0)
    jitter = 0.02 * jax.random.normal(key, (num_chains, len(z0)))
    z = jnp.asarray(z0)[None] + jitter
    inside = jax.vmap(lambda zi: in_prior(setup.prior, setup.scaling.physical(zi), traced=True))(z)
    z = jnp.where(inside[:, None], z, jnp.asarray(z0)[None])
    return dist.biject_to(setup.z_support()).inv(z)


class NutsRunner:
    """NUTS for one star at a time with a reusable compiled sampler.

    After warm-up the chains draw ``config.num_samples`` each; while the draws miss
    ``criteria`` (R-hat, bulk ESS, divergences) they go on in further blocks of that size, up to
    ``max_samples`` per chain (default: five blocks). A posterior with a minor second mode
    (the dwarf/giant ambiguity of low-resolution spectra) mixes slowly and needs the longer
    chains; an easy one stops after the first block.
    """

    def __init__(
        self,
        setup: StarInference,
        config: NutsConfig = ONE_STAR_NUTS,
        max_samples=None,
        criteria=ConvergenceCriteria(),
        progress=False,
    ):
        self.setup = setup
        self.max_samples = 5 * config.num_samples if max_samples is None else max_samples
        if self.max_samples < config.num_samples:
            raise ValueError(
                f"max_samples ({max_samples}) is below num_samples ({config.num_samples})"
            )
        self.criteria = criteria
        parallel = jax.local_device_count() >= config.num_chains
        kernel = NUTS(
            setup.star_model,
            target_accept_prob=config.target_accept,
            dense_mass=config.dense_mass,
            max_tree_depth=config.max_tree_depth,
        )
        self.mcmc = MCMC(
            kernel,
            num_warmup=config.num_warmup,
            num_samples=config.num_samples,
            num_chains=config.num_chains,
            chain_method="parallel" if parallel else "vectorized",
            jit_model_args=True,
            progress_bar=progress,
        )
        self._replicated_obs = jax.jit(
            lambda key, samples, data: Predictive(
                setup.star_model, posterior_samples=samples, return_sites=["obs"]
            )(key, data, replicate=True)["obs"]
        )
        self._log_likelihood = jax.jit(
            lambda samples, data: log_likelihood(setup.star_model, samples, data)["obs"]
        )

    @full_precision
    def run(self, stars: StarTokens, row: int, key, start=None) -> az.InferenceData:
        """Posterior of star ``row``, prepared by ``prepare_stars``; ``start``: physical
        labels [5] (default: its amortized prediction)."""
        data, anchor = one_star(self.setup, stars, row)
        return self.sample(data, anchor if start is None else start, stars.source_id[row], key)

    @full_precision
    def sample(self, data: StarData, start, source_id, key) -> az.InferenceData:
        """Posterior of one prepared star from physical labels ``start`` [5]."""
        setup, mcmc = self.setup, self.mcmc
        init_key, run_key, pp_key, scatter_key = jax.random.split(key, 4)
        init = _initial_z(setup, start, mcmc.num_chains, init_key, source_id)
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
        return finish(idata, data, source_id, "nuts", seconds, setup.noise, scatter_key)

    def _block_idata(self, data, pp_key):
        """The last run's draws with their posterior-predictive replicates and pointwise
        log-likelihood (both compiled once per runner: a block costs its sampling only)."""
        mcmc = self.mcmc
        samples = mcmc.get_samples()
        per_chain = (mcmc.num_chains, -1)
        replicated = np.asarray(self._replicated_obs(pp_key, samples, data))
        idata = az.from_numpyro(
            mcmc,
            log_likelihood=False,
            posterior_predictive={"obs": replicated.reshape(*per_chain, data.mask.size)},
            coords={"token": list(self.setup.emulator.outputs), "label": list(LABEL_INPUTS)},
            dims={"obs": ["token"], "z": ["label"]},
        )
        log_l = np.asarray(self._log_likelihood(samples, data)).reshape(per_chain)
        idata.add_groups(log_likelihood={"obs": log_l})
        return idata
