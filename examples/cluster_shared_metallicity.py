"""A hierarchical model around the frozen emulator: cluster members sharing one [Fe/H].

Five giants and dwarfs of one (simulated) open cluster: each member has its own Teff,
log g and A_K; all share [Fe/H] and [alpha/M]. The members' XP flux and colour tokens
are drawn from the emulator with the noise of a real example star, so the truth is known
and the example checks itself: the shared [Fe/H] posterior should cover the truth and be
narrower than any single member's would be.

Run:  python examples/cluster_shared_metallicity.py [--quick]
"""

import numpyro

numpyro.set_host_device_count(2)

import argparse  # noqa: E402
from functools import partial  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median  # noqa: E402

from bayesfm import FoundationModel, NoiseModel, load_example_stars, make_emulator  # noqa: E402
from bayesfm.bayes.likelihood import CorrelatedTokens, masked_correlation_whitener  # noqa: E402

FE_H, ALPHA_M = -0.25, 0.05
MEMBERS = np.array(
    [[4700, 2.4, 0.10], [4950, 2.9, 0.10], [5600, 4.3, 0.09], [5200, 4.5, 0.11], [6000, 4.2, 0.10]]
)  # teff [K], logg [dex], a_k [mag]
GUESS = [5300.0, 3.5, -0.2, 0.05, 0.1]  # where the emulator's sigma is taken, for every member


def cluster_model(observed, errors, whitener, emulator_sigma, emulator, noise, shared=True):
    """Members [M] with tokens observed [M, K]: own teff, logg, a_k; fe_h and alpha_m shared
    (``shared=False``: each member's own, i.e. every member fitted alone).

    The emulator variance is held fixed (``emulator_sigma`` [K], taken at a guess of the
    labels): letting it follow the sampled labels biases posteriors (docs/inference.md).
    """
    members = observed.shape[0]
    with numpyro.plate("cluster", 1 if shared else members):
        fe_h = numpyro.sample("fe_h", dist.Normal(-0.2, 0.5))
        alpha_m = numpyro.sample("alpha_m", dist.Normal(0.05, 0.15))
    with numpyro.plate("members", members):
        teff = numpyro.sample("teff", dist.Uniform(3800.0, 7000.0))
        logg = numpyro.sample("logg", dist.Uniform(1.0, 5.0))
        a_k = numpyro.sample("a_k", dist.TruncatedNormal(0.1, 0.1, low=0.0))
        x = jnp.stack(
            [
                teff,
                logg,
                jnp.broadcast_to(fe_h, teff.shape),
                jnp.broadcast_to(alpha_m, teff.shape),
                a_k,
            ],
            -1,
        )
        mean, _ = jax.vmap(emulator.emulate)(x)  # write for one star, vmap at the edge
        mask = jnp.ones(observed.shape, bool)
        numpyro.sample(
            "obs",
            CorrelatedTokens(mean, emulator_sigma, errors, mask, whitener, noise),
            obs=observed,
        )


def sample(model_fn, steps, quiet, *data):
    # chains start at the priors' medians: NumPyro's default, uniform in [-2, 2] of the
    # unconstrained space, puts a_k anywhere up to 7 mag, far beyond the emulator's training
    # extinction, where its response is an extrapolation with modes of its own
    mcmc = MCMC(
        NUTS(model_fn, dense_mass=True, init_strategy=init_to_median),
        num_warmup=steps[0],
        num_samples=steps[1],
        num_chains=2,
        chain_method="parallel" if jax.local_device_count() >= 2 else "vectorized",
        progress_bar=not quiet,
    )
    mcmc.run(jax.random.PRNGKey(0), *data)
    return mcmc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short chains (a smoke test)")
    args = parser.parse_args()

    model = FoundationModel.load()
    emulator = make_emulator(model)
    noise = NoiseModel.load()
    template = load_example_stars(model.vocabulary.binning).tokens
    errors = template.errors[0, template.index(emulator.outputs)]
    truth = np.column_stack(
        [MEMBERS[:, 0], MEMBERS[:, 1], np.full(5, FE_H), np.full(5, ALPHA_M), MEMBERS[:, 2]]
    )
    mean, sigma = jax.vmap(emulator.emulate)(jnp.asarray(truth, jnp.float32))
    rng = np.random.default_rng(42)
    observed = np.stack(
        [
            rng.multivariate_normal(m, noise.correlation * np.outer(s, s))
            for m, s in zip(
                np.asarray(mean),
                noise.total_scale * np.sqrt(errors**2 + np.asarray(sigma) ** 2),
                strict=True,
            )
        ]
    )
    whitener = masked_correlation_whitener(noise.correlation, np.ones(len(errors), bool))
    _, guess_sigma = emulator.emulate(jnp.asarray(GUESS, jnp.float32))
    steps = (150, 150) if args.quick else (500, 1000)
    data = (
        jnp.asarray(observed, jnp.float32),
        jnp.asarray(errors, jnp.float32),
        whitener,
        guess_sigma,
    )
    shared = sample(
        partial(cluster_model, emulator=emulator, noise=noise), steps, args.quick, *data
    )
    shared.print_summary()
    alone = partial(cluster_model, emulator=emulator, noise=noise, shared=False)
    members = sample(alone, steps, args.quick, *data).get_samples()["fe_h"]
    lo, hi = np.percentile(shared.get_samples()["fe_h"], [2.5, 97.5])
    widths = np.diff(np.percentile(members, [2.5, 97.5], axis=0), axis=0)[0]
    print(
        f"shared [Fe/H]: {np.median(shared.get_samples()['fe_h']):.3f} "
        f"(95% {lo:.3f} to {hi:.3f}, width {hi - lo:.3f}); truth {FE_H}"
    )
    print("each member alone, 95% width: " + ", ".join(f"{w:.3f}" for w in widths))
    if not lo <= FE_H <= hi:
        raise SystemExit(f"the shared [Fe/H] interval [{lo:.3f}, {hi:.3f}] misses the truth")
    if not hi - lo < widths.min():
        raise SystemExit("the shared [Fe/H] interval is not narrower than every member's")
    print("check passed: the shared interval covers the truth and is narrower than every member's")


if __name__ == "__main__":
    main()
