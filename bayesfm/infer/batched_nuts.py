"""NUTS for many stars at once: one vectorised sampler, every chain with its own adaptation.

NumPyro's functional ``hmc`` kernel is mapped over stars and chains, so a chunk of stars
costs one compiled program and the emulator runs batched. Under ``vmap`` a NUTS step lasts
as long as the longest trajectory in the batch; ``max_tree_depth`` bounds that (at most
``2**max_tree_depth - 1`` gradient evaluations per draw), and a star whose draws keep
hitting the bound is flagged rather than left to stall its chunk. On a CPU, where a batched
emulator call gains nothing over one star's chains, the stars go through one at a time so
that no chain waits on another star's (``benchmarks/nuts_batch_size.py``); an accelerator
takes them all at once.

Given a Gaussian approximation of each posterior (the importance sampler's last proposal),
chains start from draws of it and its covariance is the initial inverse mass matrix, so
that warm-up begins well conditioned instead of from the identity.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from bayesfm.bayes.star_model import StarData
from bayesfm.common.devices import bucket_size, full_precision, in_star_blocks
from bayesfm.common.stored_programs import stored_jit
from bayesfm.infer.nuts_kernel import nuts_kernels, nuts_transitions
from bayesfm.infer.settings import NutsConfig

__all__ = [
    "ChainDraws",
    "run_batched_nuts",
    "nuts_one_star",
    "chain_diagnostics",
]

# stars per compiled call on a CPU: the fastest per star in benchmarks/nuts_batch_size.py
# (1.16x faster than two; twice as fast for a chunk's lone NUTS star, which two would pad)
CPU_LOCKSTEP_STARS = 1


class ChainDraws(NamedTuple):
    """Post-warm-up draws of n stars.

    Attributes:
        z: Normalised labels [n, chains, samples, 5].
        diverging: Divergent transitions [n, chains, samples].
        at_depth_bound: Draws whose trajectory hit ``max_tree_depth`` [n, chains, samples].
        leapfrog_steps: Gradient evaluations per star [n], warm-up and all chains included.
    """

    z: np.ndarray
    diverging: np.ndarray
    at_depth_bound: np.ndarray
    leapfrog_steps: np.ndarray


@full_precision
def run_batched_nuts(
    setup,
    data: StarData,
    z_start,
    z_scale_tril,
    key,
    config=NutsConfig(),
    lockstep_stars=None,
):
    """Sample the posteriors of n stars, ``lockstep_stars`` per compiled call.

    Args:
        setup: A ``StarInference`` (emulator, prior, noise model).
        data: The stars' ``StarData`` stacked along a leading axis of n.
        z_start: Centres of approximate posteriors in normalised coordinates [n, 5],
            inside the prior.
        z_scale_tril: Their Cholesky factors [n, 5, 5]: chains start at draws from
            N(z_start, LL^T), which is also the initial inverse mass matrix.
        key: PRNG key; star i's chains depend only on (key, i).
        config: Sampler settings.
        lockstep_stars: Stars per compiled call, whose chains run in lockstep (default: 1 on a CPU,
            all n, padded to a power of two, on an accelerator). It changes the speed, and the
            draws only through floating-point rounding, which accept/reject steps amplify.
    """
    n = len(z_start)
    to_z = dist.biject_to(setup.z_support())
    z_start = jnp.asarray(z_start, jnp.float32)
    u_start = to_z.inv(z_start)
    # d u / d z is diagonal for the prior's elementwise bijection: carry L into u
    du_dz = jax.vmap(jax.jacfwd(to_z.inv))(z_start)
    u_tril = du_dz @ jnp.asarray(z_scale_tril, jnp.float32)
    keys = jax.random.split(key, n)
    sampler = _compiled_sampler(setup, config)
    size = lockstep_stars or (
        CPU_LOCKSTEP_STARS if jax.default_backend() == "cpu" else bucket_size(n)
    )
    z, diverging, steps, warmup_steps = in_star_blocks(
        sampler, (u_start, u_tril, data, keys), n, size
    )
    leapfrog_steps = steps.sum(axis=(1, 2)) + warmup_steps.sum(axis=1)
    return ChainDraws(z, diverging, steps >= 2**config.max_tree_depth - 1, leapfrog_steps)


@functools.lru_cache(maxsize=4)
def _compiled_sampler(setup, config: NutsConfig):
    """``nuts_one_star`` mapped over stars and jitted, once per (setup, config); the cache
    keeps the last few setups only."""
    sampler = jax.vmap(nuts_one_star(setup, config))
    return stored_jit(sampler, "nuts", setup.program_key, config)


def nuts_one_star(setup, config: NutsConfig):
    """The pure one-star sampler ``(u_start [5], u_tril [5, 5], data, key) -> (z draws
    [chains, draws, 5], diverging, tree steps, warm-up tree steps [chains])``, each chain
    warmed up on its own; batched code maps it over stars."""
    to_z = dist.biject_to(setup.z_support())
    init_kernel, sample_kernel = nuts_kernels(setup)

    def one_chain(u0, u_tril, data, key):
        init_key, jitter_key = jax.random.split(key)
        u0 = u0 + u_tril @ jax.random.normal(jitter_key, u0.shape)
        cov = u_tril @ u_tril.T
        state = init_kernel(
            u0,
            config.num_warmup,
            inverse_mass_matrix=cov if config.dense_mass else jnp.diag(cov),
            dense_mass=config.dense_mass,
            target_accept_prob=config.target_accept,
            max_tree_depth=config.max_tree_depth,
            model_args=(data,),
            rng_key=init_key,
        )

        state, (_, _, warmup) = nuts_transitions(sample_kernel, state, data, config.num_warmup)
        _, (u, diverging, steps) = nuts_transitions(sample_kernel, state, data, config.num_samples)
        return to_z(u), diverging, steps, jnp.sum(warmup)

    def one_star(u0, u_tril, data, key):
        chain_keys = jax.random.split(key, config.num_chains)
        return jax.vmap(one_chain, in_axes=(None, None, None, 0))(u0, u_tril, data, chain_keys)

    return one_star


def chain_diagnostics(draws: ChainDraws) -> dict:
    """Per-star convergence figures [n]: max R-hat, min bulk ESS, divergences, bound hits."""
    import arviz as az

    # a Dataset with dims (chain, draw, star, label) is what ArviZ's diagnostics take
    z = az.convert_to_dataset({"z": np.moveaxis(draws.z, 0, 2)})
    # a chain stuck at one point has zero variance: its R-hat and ESS come out NaN (not converged)
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = az.ess(z, method="bulk")["z"].values
        rhat = az.rhat(z)["z"].values if draws.z.shape[1] > 1 else np.full(ess.shape, np.nan)
    return {
        "max_rhat": np.max(rhat, axis=-1),
        "min_ess_bulk": np.min(ess, axis=-1),
        "divergences": draws.diverging.sum(axis=(1, 2)),
        "depth_bound_fraction": draws.at_depth_bound.mean(axis=(1, 2)),
    }
