"""Held-out posteriors of the whole test split: accuracy against the amortized network, coverage,
and what the trust flags separate.

Run:  python validation/heldout_posteriors.py [--config configs/validation/session.json]
      [--stars N]

Runs (or resumes) exactly the validation report's held-out catalogue (same stars, settings,
seed and folder, so the report reuses it; with ``--stars N`` only the first N test stars, in
a folder of their own), then prints and writes to validation/heldout_posteriors.json
(heldout_posteriors_first<N>.json), per label: the robust sigma of the posterior medians
against APOGEE and of the amortized prediction on the same stars (and their ratio), the 68%
and 95% coverage of APOGEE's labels (errors folded in), and the same for trusted and flagged
stars separately, for the stars whose amortized labels lie inside the training domain, and
for those with all five APOGEE labels.
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from report_config import ValidationConfig
from report_context import ReportContext
from sections.shared import calibration, reference

from bayesfm.common.metrics import robust_sigma
from bayesfm.infer.setup import StarInference, amortized_labels
from bayesfm.tokens.labels import LABEL_INPUTS

OUT = Path("validation")


def summary(draws, medians, amortized, test, mask) -> dict:
    """Per label: robust sigma of medians and amortized means, their ratio, coverage."""
    out = {"n_stars": int(mask.sum())}
    for i, name in enumerate(LABEL_INPUTS):
        truth, error = reference(test, name)
        posterior = robust_sigma(medians[mask, i] - truth[mask])
        network = robust_sigma(amortized[mask, i] - truth[mask])
        coverage = calibration(draws[mask, :, i], truth[mask], error[mask])["coverage"]
        out[name] = {
            "posterior_median_robust_sigma": posterior,
            "amortized_robust_sigma": network,
            "ratio": posterior / network,
            "coverage_68": coverage["0.68"],
            "coverage_95": coverage["0.95"],
        }
    return out


def coverage_by_width(draws, test, mask) -> dict:
    """Per label: 68% and 95% coverage in quartiles of the posterior's 16-84% half-width."""
    out = {}
    for i, name in enumerate(LABEL_INPUTS):
        truth, error = reference(test, name)
        q16, q84 = np.nanpercentile(draws[:, :, i], [16, 84], axis=1)
        width = (q84 - q16) / 2
        usable = mask & np.isfinite(truth) & np.isfinite(width)
        edges = np.quantile(width[usable], [0, 0.25, 0.5, 0.75, 1])
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            rows_mask = usable & (width >= lo) & (width <= hi)
            coverage = calibration(draws[rows_mask, :, i], truth[rows_mask], error[rows_mask])
            rows.append(
                {
                    "width": [float(lo), float(hi)],
                    "n_stars": int(rows_mask.sum()),
                    "coverage_68": coverage["coverage"]["0.68"],
                    "coverage_95": coverage["coverage"]["0.95"],
                }
            )
        out[name] = rows
    return out


def groups(table, test) -> dict:
    """Star masks [N]: all, trusted, flagged, amortized labels inside the training domain, and
    the stars with all five APOGEE labels (hot stars lack fe_h and alpha_m)."""
    trusted = table["trusted"].to_numpy(bool)
    five = np.stack([np.isfinite(reference(test, name)[0]) for name in LABEL_INPUTS]).all(axis=0)
    return {
        "all": np.ones(len(table), bool),
        "trusted": trusted,
        "flagged": ~trusted,
        "amortized_in_domain": table["amortized_in_domain"].to_numpy(bool),
        "all_five_labels": five,
    }


def _print_group(group: str, result: dict) -> None:
    print(f"\n{group} ({result['n_stars']} stars)")
    print(f"{'label':<8} {'posterior':>10} {'amortized':>10} {'ratio':>6} {'68%':>6} {'95%':>6}")
    for name in LABEL_INPUTS:
        r = result[name]
        print(
            f"{name:<8} {r['posterior_median_robust_sigma']:>10.4g} "
            f"{r['amortized_robust_sigma']:>10.4g} {r['ratio']:>6.2f} "
            f"{r['coverage_68']:>6.3f} {r['coverage_95']:>6.3f}"
        )


def _print_by_width(by_width: dict) -> None:
    print("\nin domain, coverage 68% / 95% per quartile of posterior width (narrow -> wide)")
    for name, rows in by_width.items():
        cells = "  ".join(f"{r['coverage_68']:.3f}/{r['coverage_95']:.3f}" for r in rows)
        print(f"{name:<8} {cells}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/validation/session.json")
    parser.add_argument("--stars", type=int, default=None, help="only the first N test stars")
    args = parser.parse_args()
    config = ValidationConfig.load(args.config)
    if args.stars is not None:
        config = replace(
            config, test_stars=args.stars, work_dir=f"{config.work_dir}_first{args.stars}"
        )
    setup = StarInference.default()
    ctx = ReportContext(config, setup)
    test = ctx.test
    catalogue = config.catalogue_settings(config.test_method, samplers_only=False)
    held = ctx.catalogue_draws(test, "heldout", catalogue)
    draws, table = held["draws"], held["table"]
    medians = np.nanmedian(draws, axis=1)
    amortized = amortized_labels(setup, test)[0]
    fitted = np.isfinite(medians).all(axis=1)
    trust = catalogue.trust
    results = {
        "config": args.config,
        "n_test": len(test),
        "sampler_ok_fraction": float(table["ok"].mean()),
        "trusted_fraction": float(table["trusted"][fitted].mean()),
        "fit_flagged_fraction": float((table["fit_p"] < trust.min_fit_p)[fitted].mean()),
        "domain_flagged_fraction": float(
            (table["outside_domain_fraction"] > trust.max_outside_fraction)[fitted].mean()
        ),
        "amortized_domain_flagged_fraction": float(
            (~table["amortized_in_domain"].astype(bool))[fitted].mean()
        ),
        "catalogue_seconds": held["seconds"],
    }
    for group, mask in groups(table, test).items():
        results[group] = summary(draws, medians, amortized, test, fitted & mask)
        _print_group(group, results[group])
    in_domain = fitted & groups(table, test)["amortized_in_domain"]
    results["in_domain_coverage_by_width"] = coverage_by_width(draws, test, in_domain)
    _print_by_width(results["in_domain_coverage_by_width"])
    print(
        f"\ntrusted {results['trusted_fraction']:.3f} of fitted stars; sampler checks pass "
        f"{results['sampler_ok_fraction']:.3f}; fit flagged {results['fit_flagged_fraction']:.3f}, "
        f"domain flagged {results['domain_flagged_fraction']:.3f} (posterior), "
        f"{results['amortized_domain_flagged_fraction']:.3f} (amortized labels)"
    )
    suffix = "" if args.stars is None else f"_first{args.stars}"
    out = OUT / f"heldout_posteriors{suffix}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
