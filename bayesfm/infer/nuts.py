"""NUTS for one star at a time, with a sampler compiled once for every star.

The chains run NumPyro's functional NUTS kernel, mapped over CPU cores or devices with
``pmap`` where there are enough of them (else ``vmap``), with the star's data as an argument:
two compilations (warm-up with its first block, a further block) serve every star of a run.
NumPyro's own ``MCMC(chain_method="parallel")`` bakes each star's data into its program and
compiles both anew for every star (about 7 s each on a 2-core CPU).
"""

import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.infer import Predictive
from numpyro.infer.util import log_likelihood

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import full_precision
from bayesfm.common.errors import DataError
from bayesfm.infer.diagnostics import ConvergenceCriteria, summarise
from bayesfm.infer.idata import finish
from bayesfm.infer.nuts_kernel import nuts_kernels, nuts_transitions
from bayesfm.infer.settings import ONE_STAR_NUTS, NutsConfig
from bayesfm.infer.setup import StarInference, in_prior, one_star
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.star_tokens import StarTokens

__all__ = ["DEFAULT_BLOCKS", "NutsRunner"]

# blocks of draws a star may take: a bimodal alpha_m (thin and thick disc) needed more than
# five for one of the three demo stars
DEFAULT_BLOCKS = 8


def _initial_u(setup: StarInference, x0, num_chains, key, source):
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


def _chain_programs(setup: StarInference, config: NutsConfig):
    """One chain's ``start(u0, data, key) -> (state, block)`` (warm-up, then a block of draws)
    and ``more(state, data) -> (state, block)``; a block is (z [draws, 5], diverging [draws])."""
    to_z = dist.biject_to(setup.z_support())
    init_kernel, sample_kernel = nuts_kernels(setup)

    def more(state, data):
        state, (u, diverging, _) = nuts_transitions(sample_kernel, state, data, config.num_samples)
        return state, (to_z(u), diverging)

    def start(u0, data, key):
        state = init_kernel(
            u0,
            config.num_warmup,
            dense_mass=config.dense_mass,
            target_accept_prob=config.target_accept,
            max_tree_depth=config.max_tree_depth,
            model_args=(data,),
            rng_key=key,
        )
        state, _ = nuts_transitions(sample_kernel, state, data, config.num_warmup)
        return more(state, data)

    return start, more


class NutsRunner:
    """NUTS for one star at a time with a reusable compiled sampler.

    After warm-up the chains draw ``config.num_samples`` each; while the draws miss
    ``criteria`` (R-hat, bulk ESS, divergences) they go on in further blocks of that size, up to
    ``max_samples`` per chain (default: ``DEFAULT_BLOCKS``). A posterior with a minor second
    mode (the dwarf/giant ambiguity of low-resolution spectra, or alpha_m's thin and thick
    discs) mixes slowly and needs the longer chains; an easy one stops after the first block.
    """

    def __init__(
        self,
        setup: StarInference,
        config: NutsConfig = ONE_STAR_NUTS,
        max_samples=None,
        criteria=ConvergenceCriteria(),
    ):
        self.setup, self.config = setup, config
        self.max_samples = (
            DEFAULT_BLOCKS * config.num_samples if max_samples is None else max_samples
        )
        if self.max_samples < config.num_samples:
            raise ValueError(
                f"max_samples ({max_samples}) is below num_samples ({config.num_samples})"
            )
        self.criteria = criteria
        start, more = _chain_programs(setup, config)
        if jax.local_device_count() >= config.num_chains:  # one chain per core or device
            self._start = jax.pmap(start, in_axes=(0, None, 0))
            self._more = jax.pmap(more, in_axes=(0, None))
        else:
            self._start = jax.jit(jax.vmap(start, in_axes=(0, None, 0)))
            self._more = jax.jit(jax.vmap(more, in_axes=(0, None)))
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
        init_key, run_key, pp_key, scatter_key = jax.random.split(key, 4)
        u0 = _initial_u(self.setup, start, self.config.num_chains, init_key, source_id)
        chain_keys = jax.random.split(run_key, self.config.num_chains)
        seconds, blocks, state = 0.0, [], None
        while True:
            t0 = time.perf_counter()
            if state is None:
                state, (z, diverging) = self._start(u0, data, chain_keys)
            else:
                state, (z, diverging) = self._more(state, data)
            z, diverging = np.asarray(z), np.asarray(diverging)
            seconds += time.perf_counter() - t0
            pp_key, block_key = jax.random.split(pp_key)
            blocks.append(self._block_idata(data, z, diverging, block_key))
            idata = blocks[0] if len(blocks) == 1 else az.concat(*blocks, dim="draw")
            drawn = len(blocks) * self.config.num_samples
            if (
                drawn + self.config.num_samples > self.max_samples
                or summarise(idata, self.criteria)[1]["converged"]
            ):
                break
        return finish(idata, data, source_id, "nuts", seconds, self.setup.noise, scatter_key)

    def _block_idata(self, data, z, diverging, pp_key):
        """A block's draws (z [chains, draws, 5]) with their physical labels, posterior-predictive
        replicates and pointwise log-likelihood."""
        chains, draws = z.shape[:2]
        samples = {"z": jnp.asarray(z.reshape(chains * draws, -1))}
        replicated = np.asarray(self._replicated_obs(pp_key, samples, data))
        log_l = np.asarray(self._log_likelihood(samples, data))
        x = np.asarray(self.setup.scaling.physical(z))
        names = list(self.setup.emulator.inputs)
        return az.from_dict(
            posterior={"z": z, **{name: x[..., i] for i, name in enumerate(names)}},
            sample_stats={"diverging": diverging},
            posterior_predictive={"obs": replicated.reshape(chains, draws, -1)},
            log_likelihood={"obs": log_l.reshape(chains, draws)},
            observed_data={"obs": np.asarray(data.values)},
            coords={"token": list(self.setup.emulator.outputs), "label": list(LABEL_INPUTS)},
            dims={"obs": ["token"], "z": ["label"]},
            attrs={"inference_library": "numpyro", "sampler": "NUTS"},
        )
