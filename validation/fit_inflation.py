"""Fit the likelihood's error inflation on validation stars, so that posteriors are calibrated.

Run:  python validation/fit_inflation.py [--stars 24] [--seed 0]

Pass 1 samples NUTS posteriors of validation-split stars at inflation 1 and measures, for
teff, logg and fe_h, z = (posterior median - APOGEE) / sqrt(posterior sd^2 + APOGEE error^2).
Where the likelihood dominates, posterior widths scale with the inflation, so the inflation
that makes z unit-variance is ~ the robust scatter of z. Pass 2 measures that candidate on the
same stars, and the candidate whose 68% and 95% coverages are closer to nominal (summed absolute
error) is saved. Never uses test stars.
"""

import numpyro

numpyro.set_host_device_count(2)

import argparse  # noqa: E402
import dataclasses  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bayesfm.inference import NutsRunner, StarInference  # noqa: E402
from bayesfm.library import load_library  # noqa: E402
from bayesfm.likelihood import default_noise_path  # noqa: E402
from bayesfm.metrics import robust_sigma  # noqa: E402
from bayesfm.split import split_mask  # noqa: E402

LABELS = ("teff", "logg", "fe_h")


def z_scores(setup, stars, seed):
    runner = NutsRunner(setup, num_warmup=300, num_samples=400)
    z = []
    for row in range(len(stars)):
        idata = runner.run(stars, row, jax.random.PRNGKey(seed + row))
        z.append(
            [
                (np.median(idata.posterior[n].values) - stars.column(n)[0][row])
                / np.hypot(np.std(idata.posterior[n].values), stars.column(n)[1][row])
                for n in LABELS
            ]
        )
    return np.array(z)


def report(z, inflation):
    within68, within95 = (np.abs(z) < 1).mean(axis=0), (np.abs(z) < 1.96).mean(axis=0)
    for i, name in enumerate(LABELS):
        print(
            f"  inflation {inflation:.2f} {name:<6} robust sd of z {robust_sigma(z[:, i]):.2f}  "
            f"68%: {within68[i]:.2f}  95%: {within95[i]:.2f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    setup = StarInference.default()
    setup = dataclasses.replace(setup, noise=dataclasses.replace(setup.noise, inflation=1.0))
    tokens = load_library(binning=setup.model.vocabulary.binning).tokens
    labelled = np.isfinite(tokens.values[:, tokens.index(list(LABELS))]).all(axis=1)
    rows = np.nonzero(split_mask(tokens.source_id, "validation") & labelled)[0]
    rows = np.random.default_rng(args.seed).choice(rows, args.stars, replace=False)
    stars = tokens.take(np.sort(rows))

    z1 = z_scores(setup, stars, args.seed)
    error1 = report(z1, 1.0)
    inflation = float(max(1.0, robust_sigma(z1.ravel())))
    tuned = dataclasses.replace(setup, noise=dataclasses.replace(setup.noise, inflation=inflation))
    error2 = report(z_scores(tuned, stars, args.seed), inflation)
    best = tuned if error2 < error1 else setup
    best.noise.save(default_noise_path())
    print(
        f"coverage error {error1:.2f} at 1.00, {error2:.2f} at {inflation:.2f}: "
        f"saved inflation {best.noise.inflation:.2f} to {default_noise_path()}"
    )


if __name__ == "__main__":
    main()
