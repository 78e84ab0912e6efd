"""Held-out accuracy and calibration of the foundation model, against an XGBoost baseline.

Run:  python validation/evaluate_transformer.py [--model PATH] [--out validation/transformer_results.json]
      [--split validation]  (compare candidate models on the validation split; report on test)

Prints, for the test split (never used in training or tuning):
- spectra(+colours) -> labels: robust sigma, bias and RMS of the transformer's amortized
  predictions and of XGBoost trained on the same train split with the same inputs;
- calibration: fraction of stars with |residual| < sqrt(sigma^2 + label_error^2), with the
  shipped sigma factors fitted on the validation split (validation/fit_sigma_scale.py) and
  without them ("raw");
- labels(+a_k) -> spectrum: median |residual| / flux_error per wavelength region;
- the other tasks (RP -> BP spectrum, teff+logg -> fe_h+alpha_m).
"""

import argparse
import json
import time

import numpy as np

from bayesfm.common.metrics import coverage_within, residual_stats
from bayesfm.model.foundation_model import FoundationModel
from bayesfm.model.predict import predict
from bayesfm.model.sigma_scale import SigmaScale
from bayesfm.sources.library import load_library
from bayesfm.tokens.labels import LABELS
from bayesfm.tokens.split import split_mask

REGIONS_NM = {
    "BP 400-500 nm": (400, 500),
    "BP 500-660 nm": (500, 660),
    "RP 660-800 nm": (660, 800),
    "RP 800-1000 nm": (800, 1000),
}
XGB_PARAMS = {
    "eta": 0.05,
    "max_depth": 6,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "nthread": 2,
    "seed": 0,
    "objective": "reg:squarederror",
}
XGB_ROUNDS, XGB_EARLY_STOP = 3000, 100


def xgboost_predictions(tokens, features, labels, splits, evaluate_on="test"):
    """Predictions on split ``evaluate_on`` of one XGBoost regressor per label (trained on
    the train split, early-stopped on validation)."""
    import xgboost as xgb

    x = tokens.values[:, tokens.index(features)]
    test = xgb.DMatrix(x[splits[evaluate_on]])
    out = {}
    for label in labels:
        y, _ = tokens.column(label)
        fit = splits["train"] & np.isfinite(y)
        val = splits["validation"] & np.isfinite(y)
        booster = xgb.train(
            XGB_PARAMS,
            xgb.DMatrix(x[fit], label=y[fit]),
            num_boost_round=XGB_ROUNDS,
            evals=[(xgb.DMatrix(x[val], label=y[val]), "validation")],
            early_stopping_rounds=XGB_EARLY_STOP,
            verbose_eval=False,
        )
        out[label] = booster.predict(test, iteration_range=(0, booster.best_iteration + 1))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model .safetensors (default: shipped)")
    parser.add_argument("--out", default="validation/transformer_results.json")
    parser.add_argument("--skip-xgboost", action="store_true")
    parser.add_argument("--split", default="test", choices=("test", "validation"))
    args = parser.parse_args()

    model = FoundationModel.load(args.model)
    vocabulary = model.vocabulary
    tokens = load_library(binning=vocabulary.binning).tokens
    splits = {s: split_mask(tokens.source_id, s) for s in ("train", "validation", "test")}
    test = tokens.take(splits[args.split])
    observables = list(vocabulary.names_in_group("xp_bp", "xp_rp", "colour"))
    labels = list(LABELS)
    results = {
        "model": args.model or "shipped",
        "n_parameters": model.n_parameters,
        "split": args.split,
        "n_test": len(test),
    }

    start = time.time()
    mean, raw_sigma = predict(model, test, labels, context=observables)
    results["predict_seconds"] = time.time() - start
    sigma = SigmaScale.load().apply(labels, raw_sigma)
    truth = test.values[:, test.index(labels)]
    truth_err = test.errors[:, test.index(labels)]
    results["spectra_to_labels"] = {
        label: {
            **residual_stats(mean[:, i], truth[:, i]),
            "calibrated_fraction": coverage_within(
                mean[:, i], sigma[:, i], truth[:, i], truth_err[:, i]
            ),
            "calibrated_fraction_unscaled": coverage_within(
                mean[:, i], raw_sigma[:, i], truth[:, i], truth_err[:, i]
            ),
            "median_predicted_sigma": float(np.median(sigma[:, i])),
        }
        for i, label in enumerate(labels)
    }
    if not args.skip_xgboost:
        start = time.time()
        xgb = xgboost_predictions(tokens, observables, labels, splits, args.split)
        results["xgboost_seconds"] = time.time() - start
        results["xgboost_spectra_to_labels"] = {
            label: residual_stats(xgb[label], truth[:, i]) for i, label in enumerate(labels)
        }

    # labels (+ extinction) -> spectrum and colours
    context = labels + ["a_k"]
    spec_mean, spec_sigma = predict(model, test, observables, context=context)
    obs_values = test.values[:, test.index(observables)]
    obs_errors = test.errors[:, test.index(observables)]
    z = np.abs(spec_mean - obs_values) / obs_errors
    z_total = np.abs(spec_mean - obs_values) / np.sqrt(obs_errors**2 + spec_sigma**2)
    centres = np.array([float(n[3:]) if n.startswith("xp_") else np.nan for n in observables])
    per_region = {}
    for region, (lo, hi) in REGIONS_NM.items():
        cols = (centres > lo) & (centres < hi)
        per_region[region] = {
            "median_abs_residual_over_flux_error": float(np.nanmedian(z[:, cols])),
            "median_abs_residual_over_total_sigma": float(np.nanmedian(z_total[:, cols])),
            "median_relative_residual": float(
                np.nanmedian(np.abs(spec_mean - obs_values)[:, cols] / np.abs(obs_values[:, cols]))
            ),
        }
    for colour in vocabulary.names_in_group("colour"):
        i = observables.index(colour)
        per_region[colour] = {
            "median_abs_residual_over_flux_error": float(np.nanmedian(z[:, i])),
            "median_abs_residual_over_total_sigma": float(np.nanmedian(z_total[:, i])),
            "robust_sigma_mag": residual_stats(spec_mean[:, i], obs_values[:, i])["robust_sigma"],
        }
    results["labels_to_spectrum"] = per_region

    bp = list(vocabulary.names_in_group("xp_bp"))
    rp = list(vocabulary.names_in_group("xp_rp"))
    bp_mean, _ = predict(model, test, bp, context=rp)
    bp_true = test.values[:, test.index(bp)]
    results["rp_to_bp"] = {
        "median_relative_residual": float(
            np.nanmedian(np.abs(bp_mean - bp_true) / np.abs(bp_true))
        ),
        "median_abs_residual_over_flux_error": float(
            np.nanmedian(np.abs(bp_mean - bp_true) / test.errors[:, test.index(bp)])
        ),
    }
    ll_mean, _ = predict(model, test, ["fe_h", "alpha_m"], context=["teff", "logg"])
    results["labels_to_labels"] = {
        name: residual_stats(ll_mean[:, i], test.column(name)[0])
        for i, name in enumerate(["fe_h", "alpha_m"])
    }
    _print(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")


def _print(r):
    split = r["split"]
    print(f"model: {r['model']}  ({r['n_parameters']} parameters), {r['n_test']} {split} stars")
    print(f"\nspectra(+colours) -> labels, {split} split")
    print(
        f"{'label':<8} {'sigma_rob':>10} {'bias':>9} {'rms':>9} {'calib':>6} {'raw':>6} | {'XGB sigma':>10} {'XGB bias':>9} {'XGB rms':>9}"
    )
    for label, s in r["spectra_to_labels"].items():
        x = r.get("xgboost_spectra_to_labels", {}).get(label, {})
        print(
            f"{label:<8} {s['robust_sigma']:>10.4f} {s['bias']:>9.4f} {s['rms']:>9.4f} {s['calibrated_fraction']:>6.3f} "
            f"{s['calibrated_fraction_unscaled']:>6.3f} | "
            f"{x.get('robust_sigma', np.nan):>10.4f} {x.get('bias', np.nan):>9.4f} {x.get('rms', np.nan):>9.4f}"
        )
    print("\nlabels(+a_k) -> spectrum: median |residual| / error")
    for region, s in r["labels_to_spectrum"].items():
        print(
            f"  {region:<16} obs error only {s['median_abs_residual_over_flux_error']:.2f}   "
            f"with emulator sigma {s['median_abs_residual_over_total_sigma']:.2f}"
        )
    print(
        f"\nRP -> BP spectrum: median relative residual {r['rp_to_bp']['median_relative_residual']:.4f}"
    )
    for name, s in r["labels_to_labels"].items():
        print(f"teff+logg -> {name}: robust sigma {s['robust_sigma']:.4f}")


if __name__ == "__main__":
    main()
