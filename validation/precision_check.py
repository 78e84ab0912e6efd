"""Float32 vs float64 for the posterior density that NUTS and importance sampling evaluate.

Run:  python validation/precision_check.py [--draws 20] [--seed 0]

The emulator's network runs in float32 (its weights were trained so); everything after it
(the correlated-noise triangular solve, log-determinant, chi-square over 34 tokens, the
Gaussian-mixture prior) is evaluated once in float32 and once in float64 at each shipped
example star's amortized labels and at ``--draws`` points drawn from its amortized
posterior approximation. Prints the largest |difference of log density| and the largest
relative difference of its gradient: NUTS accepts or rejects on energy differences of
order 0.1-1, so float32 is enough when these are far below that.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import log_density

from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.examples import load_example_stars


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    setup = StarInference.default()
    stars = load_example_stars(setup.model.vocabulary.binning).tokens
    prepared = prepare_stars(setup, stars)
    mean, sigma = prepared.start, prepared.start_sigma
    rng = np.random.default_rng(args.seed)

    def value_and_grad(data, z):
        return jax.value_and_grad(
            lambda zi: log_density(setup.star_model, (data,), {}, {"z": zi})[0]
        )(z)

    worst_value, worst_grad = 0.0, 0.0
    for row in range(len(prepared.rows)):
        data = jax.tree_util.tree_map(lambda a, r=row: a[r], prepared.data)
        x = mean[row] + sigma[row] * rng.standard_normal((args.draws, 5)) * 0.5
        x = np.vstack([mean[row], x])
        z = setup.scaling.normalise(x)
        for zi in z:
            v32, g32 = value_and_grad(data, jnp.asarray(zi, jnp.float32))
            with jax.enable_x64(True):
                data64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), data)
                v64, g64 = value_and_grad(data64, jnp.asarray(zi, jnp.float64))
                v64, g64 = float(v64), np.asarray(g64)
            if not np.isfinite(v64):
                continue  # outside the prior's support
            worst_value = max(worst_value, abs(float(v32) - v64))
            scale = max(np.linalg.norm(g64), 1.0)
            worst_grad = max(worst_grad, float(np.linalg.norm(np.asarray(g32) - g64) / scale))
    n = len(stars) * (args.draws + 1)
    print(f"{n} points over {len(stars)} example stars")
    print(f"max |log density float32 - float64|:        {worst_value:.2e}")
    print(f"max relative gradient difference (2-norm): {worst_grad:.2e}")


if __name__ == "__main__":
    main()
