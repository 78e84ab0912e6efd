"""Plain GELU MLPs as pure functions, and the minibatch Adam loop that fits them.

The yardsticks (``bayesfm.model.yardstick``) and the emulator's correction
(``bayesfm.model.emulator_correction``) are such MLPs: weights are a list of (w, b) pairs,
a pytree that jit, grad and safetensors all take as it is.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

__all__ = [
    "init_mlp",
    "mlp_outputs",
    "mlp",
    "fit_on_minibatches",
    "mlp_arrays",
    "mlp_from_arrays",
]


def init_mlp(key, sizes):
    """[(w, b)] of an MLP with layer widths ``sizes``, LeCun-normal weights."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        layers.append(
            (jax.random.normal(sub, (fan_in, fan_out)) / np.sqrt(fan_in), jnp.zeros(fan_out))
        )
    return layers


def mlp_outputs(layers, x):
    """The last layer's outputs [..., n_out]: GELU hidden layers, then a linear one."""
    for w, b in layers[:-1]:
        x = jax.nn.gelu(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def mlp(layers, x):
    """(mean, log_variance) [..., K] of an MLP whose last layer gives 2K outputs."""
    mean, log_variance = jnp.split(mlp_outputs(layers, x), 2, axis=-1)
    return mean, log_variance


def fit_on_minibatches(loss, params, n_rows, config, desc: str, progress: bool = True):
    """``params`` after ``config.steps`` Adam steps on ``loss(params, rows)``, the rows of each
    batch (``config.batch_size``) drawn uniformly from range(n_rows) with ``config.seed``; the
    learning rate follows a one-cycle cosine schedule peaking at ``config.learning_rate``."""
    optimizer = optax.adam(optax.cosine_onecycle_schedule(config.steps, config.learning_rate))
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, rows):
        grads = jax.grad(loss)(params, rows)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(config.seed)
    for _ in tqdm(range(config.steps), disable=not progress, desc=desc):
        params, state = step(params, state, rng.integers(0, n_rows, config.batch_size))
    return params


def mlp_arrays(layers, prefix: str) -> dict:
    """{"<prefix>/<i>/w": w, "<prefix>/<i>/b": b} of ``layers``, for a safetensors file."""
    named = {}
    for i, (w, b) in enumerate(layers):
        named[f"{prefix}/{i}/w"], named[f"{prefix}/{i}/b"] = np.asarray(w), np.asarray(b)
    return named


def mlp_from_arrays(arrays: dict, prefix: str) -> tuple:
    """``mlp_arrays``'s layers back from the named arrays that start with ``prefix``/ (empty
    if none do); ValueError if a layer is missing or the layers' shapes do not chain."""
    names = {name for name in arrays if name.startswith(f"{prefix}/")}
    n = len(names) // 2
    if names != {f"{prefix}/{i}/{part}" for i in range(n) for part in "wb"}:
        raise ValueError(f"the {prefix} layers are incomplete: {sorted(names)[:6]}")
    layers = tuple((arrays[f"{prefix}/{i}/w"], arrays[f"{prefix}/{i}/b"]) for i in range(n))
    widths = [(w.shape, b.shape) for w, b in layers]
    chained = all(len(ws) == 2 and bs == ws[1:] for ws, bs in widths) and all(
        a[0][1] == b[0][0] for a, b in zip(widths[:-1], widths[1:], strict=True)
    )
    if not chained:
        raise ValueError(f"the {prefix} layers' shapes do not chain: {widths}")
    return layers
