"""NumPyro's functional NUTS on one star's model, with the star's data as an argument, so
that one compiled program serves every star (the single-star runner and the batched one)."""

import jax
from numpyro.infer.hmc import hmc
from numpyro.infer.util import potential_energy

__all__ = ["nuts_kernels", "nuts_transitions"]


def nuts_kernels(setup):
    """(init_kernel, sample_kernel) of NUTS on ``setup.star_model``'s unconstrained "z"; both
    take ``model_args=(data,)``."""

    def potential_for(data):
        return lambda u: potential_energy(setup.star_model, (data,), {}, {"z": u})

    return hmc(potential_fn_gen=potential_for, algo="NUTS")


def nuts_transitions(sample_kernel, state, data, length):
    """``length`` NUTS transitions from ``state``: (last state, per transition (u,
    diverging, leapfrog steps))."""

    def step(state, _):
        state = sample_kernel(state, model_args=(data,))
        return state, (state.z, state.diverging, state.num_steps)

    return jax.lax.scan(step, state, None, length=length)
