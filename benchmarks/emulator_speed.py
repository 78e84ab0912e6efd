"""Latency and throughput of the emulator query NUTS makes: labels + a_k -> XP flux and colours.

Run:  python benchmarks/emulator_speed.py [--model PATH] [--repeats 300]

Prints the parameter count, the median forward and value-and-grad latency for one star
(the gradient of a Gaussian log-likelihood over every output with respect to the five
inputs, as NUTS uses it), the forward throughput of a vmapped batch, and the FLOPs of one
forward and one value-and-grad call (for the GPU estimate in docs/performance.md).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from bayesfm.model.emulator import make_emulator
from bayesfm.model.foundation_model import FoundationModel


def _median_seconds(fn, repeats):
    jax.block_until_ready(fn())  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()

    model = FoundationModel.load(args.model)
    emulator = make_emulator(model, jit=False)
    x0 = jnp.array([4800.0, 2.5, -0.2, 0.05, 0.05])
    observed = jnp.ones(len(emulator.outputs))

    def log_likelihood(x):
        mean, sigma = emulator.emulate(x)
        var = sigma**2 + 0.01**2
        return -0.5 * jnp.sum((observed - mean) ** 2 / var + jnp.log(var))

    forward = jax.jit(emulator.emulate)
    value_and_grad = jax.jit(jax.value_and_grad(log_likelihood))
    batched = jax.jit(jax.vmap(emulator.emulate))
    rng = np.random.default_rng(0)
    xs = jnp.asarray(
        x0 + rng.normal(scale=[300, 0.3, 0.2, 0.05, 0.05], size=(args.batch, 5)), jnp.float32
    )

    t_forward = _median_seconds(lambda: forward(x0), args.repeats)
    t_grad = _median_seconds(lambda: value_and_grad(x0), args.repeats)
    t_batch = _median_seconds(lambda: batched(xs), max(args.repeats // 20, 5))
    print(f"device:                       {jax.devices()[0].device_kind}")
    print(f"parameters:                   {model.n_parameters}")
    print(
        f"query:                        {len(emulator.inputs)} inputs -> {len(emulator.outputs)} outputs"
    )
    print(f"forward, one star:            {t_forward * 1e3:.3f} ms (median of {args.repeats})")
    print(f"value-and-grad, one star:     {t_grad * 1e3:.3f} ms (median of {args.repeats})")
    print(f"grad / forward ratio:         {t_grad / t_forward:.2f}")
    print(
        f"forward, batch of {args.batch}:     {t_batch * 1e3:.2f} ms = {args.batch / t_batch:,.0f} stars/s"
    )
    print(f"FLOPs, forward:               {_flops(forward, x0) / 1e6:.2f} M (XLA cost analysis)")
    print(f"FLOPs, value-and-grad:        {_flops(value_and_grad, x0) / 1e6:.2f} M")


def _flops(jitted, x) -> float:
    """Floating-point operations of one call, as XLA's compiled cost analysis counts them."""
    cost = jitted.lower(x).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


if __name__ == "__main__":
    main()
