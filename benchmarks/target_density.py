"""What one evaluation of a star's target density costs beyond the emulator.

Run:  python benchmarks/target_density.py [--stars 8] [--draws 64] [--repeats 200]

On the first ``--stars`` test-split stars, for blocks of ``--draws`` points around each
star's amortized labels (the block importance sampling evaluates at once on a CPU), the
median seconds per block, forward and value-and-grad, side by side in one run (the kinds
measured in turn within each repetition, so that drift hits all alike):
- "emulator": the emulator alone;
- "target density": the star model's log-density as the samplers evaluate it (prior,
  emulator and correlated Student-t likelihood, the star's data passed as an argument);
- "chi-square, product" and "chi-square, triangular solve": the emulator and the whitened
  residual's chi-square, the residual whitened by the star's whitener (one matrix product,
  as the likelihood does) or by a triangular solve with its Cholesky factor (as it did
  until this release).
Prints the medians over stars and their ratios to the emulator's.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.util import log_density

from bayesfm.bayes.likelihood import lower_triangular_inverse, whitened_residual
from bayesfm.infer.setup import StarInference, prepare_stars
from bayesfm.sources.library import first_stars_of_split


def kinds(setup):
    """Name -> f(z [5], data, chol) -> scalar, each vmapped over a block of z (``chol``: the
    Cholesky factor of the star's covariance, computed once per star outside the timing)."""
    scaling = setup.scaling
    error_scale = jnp.asarray(setup.noise.total_scale)

    def emulated(z):
        return setup.emulator.emulate(scaling.physical(z))[0]

    def scaled_residual(z, data):
        scale = error_scale * jnp.sqrt(data.errors**2 + data.emulator_sigma**2)
        return jnp.where(data.mask, (data.values - emulated(z)) / scale, 0.0)

    def emulator(z, data, chol):
        return jnp.sum(emulated(z))

    def target(z, data, chol):
        return log_density(setup.star_model, (data,), {}, {"z": z})[0]

    def by_product(z, data, chol):  # as the likelihood whitens
        sigma = data.emulator_sigma
        args = (data.values, data.errors, data.mask, data.whitener, emulated(z), sigma)
        return jnp.sum(whitened_residual(*args, error_scale)[0] ** 2)

    def by_solve(z, data, chol):
        residual = jax.scipy.linalg.solve_triangular(chol, scaled_residual(z, data), lower=True)
        return jnp.sum(residual**2)

    return {
        "emulator": emulator,
        "target density": target,
        "chi-square, product": by_product,
        "chi-square, triangular solve": by_solve,
    }


def compiled(fn, gradient: bool):
    one = jax.value_and_grad(fn) if gradient else fn
    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=8)
    parser.add_argument("--draws", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    setup = StarInference.default()
    stars = first_stars_of_split("test", args.stars, setup.model.vocabulary.binning)
    prepared = prepare_stars(setup, stars)
    rng = np.random.default_rng(0)
    programs = {
        (name, gradient): compiled(fn, gradient)
        for name, fn in kinds(setup).items()
        for gradient in (False, True)
    }
    seconds = {key: [] for key in programs}
    for i in range(len(prepared.rows)):
        data = jax.tree_util.tree_map(lambda a, i=i: jnp.asarray(a[i]), prepared.data)
        chol = lower_triangular_inverse(data.whitener)
        centre = setup.scaling.normalise(prepared.start[i])
        z = jnp.asarray(centre + 0.3 * rng.normal(size=(args.draws, 5)), jnp.float32)
        for program in programs.values():
            jax.block_until_ready(program(z, data, chol))
        times = {key: [] for key in programs}
        for _ in range(args.repeats):
            for key, program in programs.items():
                start = time.perf_counter()
                jax.block_until_ready(program(z, data, chol))
                times[key].append(time.perf_counter() - start)
        for key in programs:
            seconds[key].append(np.median(times[key]))
    print(f"device: {jax.default_backend()}; {len(prepared.rows)} stars, blocks of {args.draws}")
    print(f"{'per block [ms]':32s} {'forward':>9s} {'ratio':>6s} {'value+grad':>11s} {'ratio':>6s}")
    base = {g: np.median(seconds[("emulator", g)]) for g in (False, True)}
    for name in kinds(setup):
        row = [np.median(seconds[(name, g)]) for g in (False, True)]
        print(
            f"{name:32s} {1e3 * row[0]:9.3f} {row[0] / base[False]:6.2f} "
            f"{1e3 * row[1]:11.3f} {row[1] / base[True]:6.2f}"
        )


if __name__ == "__main__":
    main()
