"""Emulator fidelity: how closely each emulator reproduces held-out stars' XP and colour tokens.

Run:  python benchmarks/emulator_fidelity.py [--model PATH] [--mlp-steps 20000] [--stars N]
      [--transformer-only] [--split validation] [--compare PATH ...] [--out FILE]
      [--without-abundances]

Side by side in one run, on the test split's stars (or --split's) that have all four APOGEE
labels and a valid ak_targ: the transformer emulator exactly as the NumPyro models call it
(``make_emulator``, with the sigma factors the model records; a model (``--model`` or
``--compare``) that records none, a training run's best, gets them fitted on the validation
split first), and the MLP yardstick (``bayesfm.yardstick``, trained here on the train split) with and without a latent A_K per training star. Each is measured at the
stars' APOGEE labels with A_K = ak_targ, and with A_K fitted per star (a grid over the
transformer's a_k from -0.2 to 1.5 mag, on each emulator's A_K scale: minimum of chi-square
+ log det, no prior), the latter also for giants and
dwarfs (APOGEE logg >= 3.5) apart. Per wavelength region:
median |obs - mean| / obs error and / total sigma (sqrt(obs error^2 + emulator sigma^2):
0.67 if the sigma means what it says), and the robust sigma of the BP-RP residual [mag];
for the shipped model also over the likelihood's scale (the noise model's c x total sigma),
against the median its Student-t tokens expect.
Writes benchmarks/emulator_fidelity.json. ``--without-abundances``: the split's stars that
APOGEE gives no fe_h and alpha_m (hot stars) instead, at the typical abundances of the
stand-ins training gives them (``bayesfm.model.abundance_donors``).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

from bayesfm.bayes.noise_model import NoiseModel
from bayesfm.common.metrics import robust_sigma
from bayesfm.model.abundance_donors import AbundanceDonors
from bayesfm.model.emulator import make_emulator
from bayesfm.model.emulator_sigma import with_fitted_sigma_factors
from bayesfm.model.extinction_fit import FREE_RANGE_MAG, fit_free_extinction, free_range_of
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.yardstick import MlpEmulatorConfig, train_mlp_emulator
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.split import split_mask

REGIONS_NM = {
    "BP 400-500": (400, 500),
    "BP 500-660": (500, 660),
    "RP 660-800": (660, 800),
    "RP 800-1000": (800, 1000),
}
DWARF_LOGG = 3.5  # APOGEE logg at and above which a star counts as a dwarf
OUT = Path(__file__).with_suffix(".json")


def fidelity(emulator, inputs, observed, errors, error_scale=None) -> dict:
    """The table's row for one emulator at ``inputs`` [N, 5] (physical); with the noise
    model's per-token factors ``error_scale`` [K] also |obs - mean| over the likelihood's
    scale (c x total sigma)."""
    mean, sigma = emulator.batch(inputs)
    residual = np.abs(observed - mean)
    over_error = residual / errors
    over_total = residual / np.sqrt(errors**2 + sigma**2)
    centres = np.array([float(n[3:]) if n.startswith("xp_") else np.nan for n in emulator.outputs])
    row = {}
    for region, (lo, hi) in REGIONS_NM.items():
        cols = (centres > lo) & (centres < hi)
        row[region] = {
            "over_obs_error": float(np.nanmedian(over_error[:, cols])),
            "over_total_sigma": float(np.nanmedian(over_total[:, cols])),
            "relative": float(np.nanmedian(residual[:, cols] / np.abs(observed[:, cols]))),
        }
        if error_scale is not None:
            over_likelihood = over_total[:, cols] / error_scale[cols]
            row[region]["over_likelihood_sigma"] = float(np.nanmedian(over_likelihood))
    bp_rp = emulator.outputs.index("bp_rp")
    row["bp_rp_robust_sigma_mag"] = robust_sigma(mean[:, bp_rp] - observed[:, bp_rp])
    return row


def measured_stars(stars, outputs, limit=None):
    """The first ``limit`` of ``stars`` with all five inputs and some of ``outputs``: their rows,
    inputs [n, 5] (float32), observed ``outputs`` [n, K] and errors [n, K]."""
    inputs = stars.values[:, stars.index(LABEL_INPUTS)]
    observed = stars.values[:, stars.index(outputs)]
    complete = np.isfinite(inputs).all(axis=1) & np.isfinite(observed).any(axis=1)
    rows = np.flatnonzero(complete)[:limit]
    errors = stars.errors[rows][:, stars.index(outputs)]
    return rows, inputs[rows].astype(np.float32), observed[rows], errors


def measure(name, emulator, inputs, observed, errors, a_k_range, error_scale=None) -> dict:
    start = time.time()
    fitted = fit_free_extinction(emulator, inputs[:, :4], observed, errors, True, a_k_range)
    with_fit = inputs.copy()
    with_fit[:, 4] = fitted.a_k
    dwarf = inputs[:, LABEL_INPUTS.index("logg")] >= DWARF_LOGG
    result = {
        "at_ak_targ": fidelity(emulator, inputs, observed, errors, error_scale),
        "a_k_fitted": fidelity(emulator, with_fit, observed, errors, error_scale),
        "fitted_minus_ak_targ_robust_sigma_mag": robust_sigma(fitted.a_k - inputs[:, 4]),
        "a_k_fitted_by_type": {
            kind: fidelity(emulator, with_fit[rows], observed[rows], errors[rows], error_scale)
            for kind, rows in (("giants", ~dwarf), ("dwarfs", dwarf))
        },
        "seconds": time.time() - start,
    }
    print(f"{name}: measured in {result['seconds']:.0f} s")
    return result


def _print(results):
    header = f"{'emulator':<34} {'A_K':<11}" + "".join(f"{r:>12}" for r in REGIONS_NM)
    print(header + f"{'BP-RP':>8}   |obs-mean|/total sigma")
    for name, result in results["emulators"].items():
        rows = {"at_ak_targ": result["at_ak_targ"], "a_k_fitted": result["a_k_fitted"]}
        rows |= {f"fit {kind}": row for kind, row in result["a_k_fitted_by_type"].items()}
        for case, row in rows.items():
            cells = "".join(f"{row[r]['over_obs_error']:>12.2f}" for r in REGIONS_NM)
            totals = " / ".join(f"{row[r]['over_total_sigma']:.2f}" for r in REGIONS_NM)
            print(f"{name:<34} {case:<11}{cells}{row['bp_rp_robust_sigma_mag']:>8.3f}   {totals}")
    if "likelihood_expected_median" in results:
        name, result = next(iter(results["emulators"].items()))
        row = result["a_k_fitted"]
        cells = " / ".join(f"{row[r]['over_likelihood_sigma']:.2f}" for r in REGIONS_NM)
        print(
            f"{name}, A_K fitted, |obs-mean| / (noise model c x total sigma): {cells} "
            f"(its tokens' distribution expects {results['likelihood_expected_median']:.2f})"
        )


def _likelihood_scale(outputs) -> dict:
    """The shipped noise model's factors c [K] on ``outputs`` and the median |z| its tokens'
    distribution expects (Student-t with its degrees of freedom, or a Gaussian's 0.674)."""
    noise = NoiseModel.load()
    scale = dict(zip(noise.names, noise.total_scale, strict=True))
    dof = noise.tail_dof
    return {
        "error_scale": np.array([scale[name] for name in outputs]),
        "expected_median": float(stats.norm.ppf(0.75) if dof is None else stats.t.ppf(0.75, dof)),
    }


def _with_sigma_factors(model, path, validation):
    """``model``, with emulator sigma factors fitted on the validation split if it records
    none (a training run's best): emulators are compared each with its own factors."""
    if "emulator_sigma_factors" in model.info:
        return model
    print(f"{path} records no emulator sigma factors: fitting them on the validation split")
    return with_fitted_sigma_factors(model, validation)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="transformer weights (default: shipped)")
    parser.add_argument("--mlp-steps", type=int, default=MlpEmulatorConfig.steps)
    parser.add_argument("--stars", type=int, default=None, help="first N stars only")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--split", default="test", help="stars to measure on (validation: to choose a model)"
    )
    parser.add_argument(
        "--transformer-only", action="store_true", help="skip the MLP yardsticks (a quick check)"
    )
    parser.add_argument(
        "--without-abundances",
        action="store_true",
        help="stars without APOGEE fe_h and alpha_m, at the stand-ins' typical abundances",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        help="more transformer weights measured side by side (e.g. the previous shipped model)",
    )
    args = parser.parse_args()

    model = FoundationModel.load(args.model)
    vocabulary = model.vocabulary
    tokens = load_library(binning=vocabulary.binning).tokens
    validation = tokens.take(split_mask(tokens.source_id, "validation"))
    model = _with_sigma_factors(model, args.model, validation)
    emulator = make_emulator(model)
    stars = tokens.take(split_mask(tokens.source_id, args.split))
    train = tokens.take(split_mask(tokens.source_id, "train"))
    if args.without_abundances:
        donors = AbundanceDonors.from_tokens(train)
        stars = donors.with_typical(
            stars.take(donors.fillable(stars.values[:, stars.index(LABEL_INPUTS)]))
        )
    rows, inputs, observed, errors = measured_stars(stars, emulator.outputs, args.stars)
    kind = "without abundances" if args.without_abundances else "with all four labels"
    print(f"{len(rows)} {args.split} stars {kind} and a valid ak_targ")

    likelihood = _likelihood_scale(emulator.outputs) if args.model is None else None
    emulators = {
        f"transformer ({args.model or 'shipped'})": (
            emulator,
            free_range_of(model),
            None if likelihood is None else likelihood["error_scale"],
        )
    }
    for path in args.compare:
        other = _with_sigma_factors(FoundationModel.load(path), path, validation)
        emulators[f"transformer ({path})"] = (make_emulator(other), free_range_of(other), None)
    for latent in () if args.transformer_only else (True, False):
        config = MlpEmulatorConfig(steps=args.mlp_steps, latent_extinction=latent)
        start = time.time()
        label = f"MLP yardstick, {'latent A_K' if latent else 'ak_targ as given'}"
        emulators[label] = (train_mlp_emulator(train, vocabulary, config), FREE_RANGE_MAG, None)
        print(f"{label}: trained in {time.time() - start:.0f} s")

    results = {
        "n_stars": len(rows),
        "split": args.split,
        "model": args.model or "shipped",
        "stars_without_abundances": args.without_abundances,
        "mlp_steps": args.mlp_steps,
        "a_k_fit_range_transformer_a_k": FREE_RANGE_MAG,
        "emulators": {
            name: measure(name, em, inputs, observed, errors, a_k_range, error_scale)
            for name, (em, a_k_range, error_scale) in emulators.items()
        },
    }
    if likelihood is not None:
        results["likelihood_expected_median"] = likelihood["expected_median"]
    _print(results)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
