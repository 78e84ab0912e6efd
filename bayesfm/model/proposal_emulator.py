"""A fast stand-in for the emulator that only proposes: an MLP distilled from it.

Importance sampling needs the emulator twice: to find each star's modes and their Hessians
(the Laplace proposal, ``bayesfm.infer.mode``) and to weigh the draws. Only the weights must
come from the emulator itself: a proposal built on an approximation of the posterior stays
a valid proposal, and the weights correct it exactly. The mode search with the transformer
was about half of a catalogue's time on a CPU; an MLP does the same search in a small
fraction of it, and one short round with the emulator from each mode it finds
(``bayesfm.infer.mode``) gives the posterior's own mode and curvature (docs/performance.md).

The MLP maps the five normalised inputs to the emulator's normalised means and log sigmas.
It is distilled on label vectors drawn from the label prior, half of them scattered further
(``ProposalEmulatorConfig.spread``) so that the searches' wider starts stay covered, with
each mean's error counted in units of its token's typical observational error. It is saved
as safetensors plus a JSON sidecar that records the fingerprint of the emulator it imitates
(``emulator_fingerprint``: the weights' hash and the emulator's settings in the model's
info), and is used only for that emulator.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.common.errors import DataError
from bayesfm.common.files import shipped_data_path
from bayesfm.common.jsonio import to_json
from bayesfm.common.pytree_io import load_named_arrays, save_named_arrays
from bayesfm.model.emulator import Emulator
from bayesfm.model.mlp import fit_on_minibatches, init_mlp, mlp, mlp_arrays, mlp_from_arrays
from bayesfm.tokens.vocabulary import Scaling

__all__ = [
    "ProposalEmulatorConfig",
    "distil_proposal_emulator",
    "save_proposal_emulator",
    "load_proposal_emulator",
    "default_proposal_emulator_path",
]

_PREFIX = "proposal_emulator"


@dataclass(frozen=True)
class ProposalEmulatorConfig:
    """The distillation's recipe."""

    hidden: tuple = (512, 512, 512)
    samples: int = 400_000  # label vectors the emulator is evaluated at
    spread: float = 0.5  # extra normalised scatter of half the samples
    steps: int = 20000
    batch_size: int = 1024
    learning_rate: float = 1e-3  # peak of a one-cycle cosine schedule
    seed: int = 0


def distil_proposal_emulator(
    emulator: Emulator,
    prior,
    in_scaling: Scaling,
    out_scaling: Scaling,
    error,
    config,
    progress=True,
) -> tuple:
    """The MLP's layers [(w, b)], distilled from ``emulator`` on draws from ``prior``.

    Args:
        emulator: The emulator to imitate (physical inputs -> physical mean and sigma).
        prior: NumPyro distribution over the physical inputs [5].
        in_scaling, out_scaling: Normalisation of the inputs and of the emulator's outputs.
        error: Each output's typical observational error, normalised [K].
        config: A ``ProposalEmulatorConfig``.
    """
    key_prior, key_spread, key_init = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    z = in_scaling.normalise(prior.sample(key_prior, (config.samples,)))
    scatter = config.spread * jax.random.normal(key_spread, z.shape)
    z = np.asarray(z + scatter * (jnp.arange(config.samples) % 2)[:, None], np.float32)
    mean, sigma = emulator.batch(np.asarray(in_scaling.physical(z)))
    target_mean = jnp.asarray(out_scaling.normalise(mean), jnp.float32)
    target_log_sigma = jnp.asarray(np.log(sigma / out_scaling.scale), jnp.float32)
    weight = jnp.asarray(1.0 / np.asarray(error), jnp.float32)
    z = jnp.asarray(z)
    n_out = mean.shape[1]
    layers = init_mlp(key_init, [z.shape[1], *config.hidden, 2 * n_out])

    def loss(layers, rows):
        m, log_sigma = mlp(layers, z[rows])
        misfit = ((m - target_mean[rows]) * weight) ** 2
        return jnp.mean(misfit + (log_sigma - target_log_sigma[rows]) ** 2)

    layers = fit_on_minibatches(loss, layers, len(z), config, "proposal emulator", progress)
    return tuple(tuple(np.asarray(a) for a in layer) for layer in layers)


def as_emulator(layers, emulator: Emulator, in_scaling: Scaling, out_scaling: Scaling) -> Emulator:
    """The distilled MLP as an ``Emulator`` with ``emulator``'s inputs and outputs."""
    layers = jax.tree_util.tree_map(jnp.asarray, layers)
    in_loc, in_scale, out_loc, out_scale = (
        jnp.asarray(a, jnp.float32) for a in (*in_scaling, *out_scaling)
    )

    def emulate(x):
        m, log_sigma = mlp(layers, (jnp.asarray(x) - in_loc) / in_scale)
        return out_loc + out_scale * m, out_scale * jnp.exp(log_sigma)

    digest = hashlib.sha256()
    for array in jax.tree_util.tree_leaves((layers, in_scaling, out_scaling)):
        digest.update(f"{np.shape(array)}".encode())
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return Emulator(emulator.inputs, emulator.outputs, jax.jit(emulate), digest.hexdigest())


def save_proposal_emulator(path, layers, fingerprint: str, config) -> None:
    """Write ``path`` (.safetensors) and its .json sidecar (the imitated emulator's
    ``emulator_fingerprint``, the recipe)."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_named_arrays(path, mlp_arrays(layers, _PREFIX))
    meta = {"emulator_fingerprint": fingerprint, "config": to_json(config)}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def load_proposal_emulator(
    fingerprint: str, emulator: Emulator, in_scaling, out_scaling, path=None
) -> Emulator | None:
    """The proposal emulator distilled from the emulator with ``fingerprint``
    (``emulator_fingerprint``), or None if there is no file at ``path`` (default: the shipped
    one) or it imitates another emulator.

    Raises:
        DataError: the files are unreadable or their layers do not fit ``emulator``.
    """
    path = Path(path or default_proposal_emulator_path()).with_suffix(".safetensors")
    if not path.exists() or not path.with_suffix(".json").exists():
        return None
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        layers = mlp_from_arrays(load_named_arrays(path), _PREFIX)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: the proposal emulator is unreadable ({err}); refit it") from err
    if meta.get("emulator_fingerprint") != fingerprint:
        return None
    shapes = (layers[0][0].shape[0], layers[-1][0].shape[1]) if layers else None
    if shapes != (len(emulator.inputs), 2 * len(emulator.outputs)):
        raise DataError(
            f"{path}: the proposal emulator maps {shapes} but the emulator has "
            f"{len(emulator.inputs)} inputs and {len(emulator.outputs)} outputs; refit it "
            "(validation/fit_proposal_emulator.py)"
        )
    return as_emulator(layers, emulator, in_scaling, out_scaling)


def default_proposal_emulator_path() -> Path:
    return shipped_data_path("proposal_emulator.safetensors")
