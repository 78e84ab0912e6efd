"""Latency and throughput of the emulator query NUTS makes: labels + a_k -> XP flux and colours.

Run:  python benchmarks/emulator_speed.py [--model PATH ...] [--repeats 300]

Prints, for each model (default: the shipped one; several are measured side by side in one
run, with their ratios to the first), the parameter count, the median forward and
value-and-grad latency for one star (the gradient of a Gaussian log-likelihood over every
output with respect to the five inputs, as NUTS uses it), the forward throughput of vmapped
batches of several sizes (on a CPU, batches larger than the cache run slower per star), and the FLOPs of one forward and one value-and-grad call (for the GPU
estimate in docs/performance.md).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.model.emulator import make_emulator
from bayesfm.model.foundation_model import FoundationModel

X0 = jnp.array([4800.0, 2.5, -0.2, 0.05, 0.05])


def _median_seconds(fn, repeats):
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(path, repeats: int, batches) -> dict:
    """The figures of one model."""
    model = FoundationModel.load(path)
    emulator = make_emulator(model, jit=False)
    observed = jnp.ones(len(emulator.outputs))

    def log_likelihood(x):
        mean, sigma = emulator.emulate(x)
        var = sigma**2 + 0.01**2
        return -0.5 * jnp.sum((observed - mean) ** 2 / var + jnp.log(var))

    forward = jax.jit(emulator.emulate)
    value_and_grad = jax.jit(jax.value_and_grad(log_likelihood))
    batched = jax.jit(jax.vmap(emulator.emulate))
    rng = np.random.default_rng(0)
    scale = [300, 0.3, 0.2, 0.05, 0.05]
    figures = {
        "parameters": model.n_parameters,
        "forward_ms": 1e3 * _median_seconds(lambda: forward(X0), repeats),
        "value_and_grad_ms": 1e3 * _median_seconds(lambda: value_and_grad(X0), repeats),
    }
    for batch in batches:
        xs = jnp.asarray(X0 + rng.normal(scale=scale, size=(batch, 5)), jnp.float32)
        calls = max(repeats * 64 // batch, 5)
        figures[f"batch_{batch}_stars_per_s"] = batch / _median_seconds(
            lambda xs=xs: batched(xs), calls
        )
    return figures | {
        "forward_mflop": _flops(forward, X0) / 1e6,
        "value_and_grad_mflop": _flops(value_and_grad, X0) / 1e6,
    }


def _flops(jitted, x) -> float:
    """Floating-point operations of one call, as XLA's compiled cost analysis counts them."""
    cost = jitted.lower(x).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="*", default=[None], help="weights (default: shipped)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 1024, 4096])
    args = parser.parse_args()

    print(f"device: {jax.devices()[0].device_kind}; 5 inputs -> XP flux and colours")
    print(f"medians of {args.repeats} calls; batches of {args.batches} for the throughput")
    results = [measure(path, args.repeats, args.batches) for path in args.model]
    names = [str(path or "shipped") for path in args.model]
    print(f"{'':<24}" + "".join(f"{name[-29:]:>30}" for name in names))
    for key in results[0]:
        cells = "".join(f"{r[key]:>30,.3f}" for r in results)
        ratios = "  ratio to first: " + ", ".join(
            f"{r[key] / results[0][key]:.2f}" for r in results[1:]
        )
        print(f"{key:<24}{cells}" + (ratios if len(results) > 1 else ""))


if __name__ == "__main__":
    main()
