"""validation/REPORT.md from the report's results (every number here is in results.json)."""

from pathlib import Path

from bayesfm.tokens.labels import LABEL_INPUTS

SECTIONS = (  # results.json's sections, in report.py's order
    "heldout",
    "methods",
    "sbc",
    "sbc_truth_sigma",
    "reanchored",
    "sbc_noise",
    "misfit",
    "extinction_curve",
    "hidden_spectrum",
    "loci",
)

CALIBRATED = ("teff", "logg", "fe_h")  # the labels the coverage target is set for
TARGET = 0.03  # |coverage - nominal| allowed at 68% and 95%
SBC_ALPHA = 0.01  # an SBC uniformity test passes with p above this


def write_markdown(results: dict, path: Path) -> None:
    lines = [
        "# bayesfm validation report",
        "",
        *_regenerate(results),
        "",
        *_scope(results),
        *_heldout(results["heldout"]),
        *_misfit(results["misfit"], results["heldout"]["by_bin"]),
        *_methods(results["methods"]),
        *_sbc(results["sbc"], results["sbc_truth_sigma"], results["sbc_noise"]),
        *_reanchored(results["reanchored"]),
        *_extinction(results["extinction_curve"]),
        *_hidden(results["hidden_spectrum"]),
        *_loci(results["loci"]),
        *_verdict(results),
        "## Run time",
        "",
        "Seconds each resumable run took when it was first computed (summed over its chunks; "
        "cached in the work_dir):",
        "",
        *[f"- {name}: {sec:.0f} s" for name, sec in results["first_computed_seconds"].items()],
        "",
        "Wall time of the invocation that wrote this report (a resumed step counts only its "
        "loading; the from-scratch figure above adds the two lists):",
        "",
        *[f"- {name}: {seconds:.0f} s" for name, seconds in results["seconds"].items()],
        "",
    ]
    path.write_text("\n".join(lines))


RESUMABLE_STEPS = (  # the steps whose first-computation seconds results.json records
    "held-out catalogue",
    *(f"{m} on check stars" for m in ("nuts", "importance", "svi")),
    *(f"{s} {m}" for s in ("sbc", "sbc_truth_sigma") for m in ("importance", "svi", "nuts")),
    "re-anchored passes",
    "hidden spectrum",
)


def _regenerate(results):
    """How to regenerate the report, how long that takes, and which run wrote which section."""
    first, total = results["first_computed_seconds"], results["seconds"]["total"]
    # this invocation's wall time counts the loading of resumed steps too: an upper bound
    hours = (sum(first.values()) + total) / 3600
    missing = [step for step in RESUMABLE_STEPS if step not in first]
    lines = [
        f"Regenerate: `python validation/report.py --config {results['config_file']}`. "
        + (
            f"From scratch it takes about {hours:.1f} h on the machine that wrote this"
            if not missing
            else f"From scratch, the steps timed under Run time take {hours:.1f} h on the "
            f"machine that wrote this, and {', '.join(missing)} (run before their times "
            "were recorded) add to that"
        )
        + "; a rerun resumes the expensive steps from the config's work_dir (this invocation: "
        f"{total / 60:.0f} min). Every number below is also in `validation/results.json`."
    ]
    kept = [name for name in SECTIONS if name not in results["recomputed"]]
    if kept:
        lines += [
            "",
            f"This invocation recomputed {', '.join(results['recomputed'])} (`--only`); "
            f"{', '.join(kept)} come from an earlier run of the same config.",
        ]
    return lines


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _scope(results):
    c = results["config"]
    n, v = results["nuts_settings"]["nuts"], results["nuts_settings"]["convergence"]
    return [
        "## Scope of this run",
        "",
        f"- Held-out test-split stars: {results['n_test']} "
        f"({'all' if c['test_stars'] is None else 'the first ' + str(c['test_stars'])}), "
        f"catalogue method `{c['test_method']}`.",
        f"- Method cross-check (NUTS, importance sampling, SVI-{c['svi']['guide']}) on the first "
        f"{c['method_check_stars']} of them.",
        f"- SBC: {c['sbc_stars']} prior draws (importance sampling, SVI), NUTS on the first "
        f"{c['sbc_nuts_stars']} ({c['sbc_truth_sigma_nuts_stars']} in the controlled test); "
        f"ranks among {c['sbc_ranks']} thinned draws.",
        f"- NUTS (cross-check and SBC): {n['num_chains']} chains x ({n['num_warmup']} warm-up + "
        f"{n['num_samples']} draws), tree depth <= {n['max_tree_depth']}; a star passes with "
        f"R-hat <= {v['max_rhat']}, bulk ESS >= {v['min_ess_bulk']:g} and at most "
        f"{v['max_divergences']} divergences.",
        f"- Hidden spectrum: flux tokens below {c['hidden_below_nm']} nm of {c['hidden_stars']} "
        "test stars.",
        "",
    ]


def _by_trust(section):
    """Trusted vs flagged stars (docs/conventions.md, trust flags)."""
    rows = [
        [name]
        + [
            f"{s[name]['robust_sigma']:.3g} / {s[name]['coverage_68']:.3f} / {s[name]['coverage_95']:.3f}"
            for s in (section["trusted"], section["flagged"])
        ]
        for name in LABEL_INPUTS
    ]
    header = [
        "label",
        f"trusted ({section['trusted']['n']} stars): robust sigma / 68% / 95%",
        f"flagged ({section['flagged']['n']} stars)",
    ]
    return [
        "### Trusted vs flagged stars",
        "",
        f"{section['trusted_fraction']:.1%} of the fitted stars are `trusted` (fit p-value, "
        "training domain and the sampler's checks all pass).",
        "",
        *_table(header, rows),
    ]


def _heldout(section):
    acc = section["accuracy"]
    rows = []
    for name in LABEL_INPUTS:
        row = [name]
        for source in ("posterior_median", "amortized", "xgboost"):
            s = acc[name].get(source)
            row.append("-" if s is None else f"{s['robust_sigma']:.3g} / {s['bias']:+.3g}")
        row.append(acc[name]["posterior_median"]["n"])
        rows.append(row)
    paths = ", ".join(f"{k or 'none'} {v:.0%}" for k, v in section["paths"].items())
    out = [
        "## 1. Held-out APOGEE stars",
        "",
        f"Paths: {paths}; {section['ok_fraction']:.0%} of stars passed their checks "
        "(k-hat and ESS, or R-hat, ESS and divergences).",
        "",
        "Robust sigma / bias (median residual) against APOGEE; RMS is in results.json.",
        "",
        *_table(["label", "posterior median", "amortized transformer", "XGBoost", "n"], rows),
        "![accuracy](figures/accuracy.png)",
        "",
        "### Calibration (APOGEE errors folded in)",
        "",
    ]
    rows = []
    for name in LABEL_INPUTS:
        c, k = section["calibration"][name], section["calibration_ok_only"][name]["coverage"]
        rows.append(
            [name]
            + [f"{c['coverage'][lvl]:.3f}" for lvl in ("0.50", "0.68", "0.90", "0.95")]
            + [f"{c['z_sd']:.2f}", f"{k['0.68']:.3f} / {k['0.95']:.3f}"]
        )
    out += _table(
        ["label", "50%", "68%", "90%", "95%", "sd(z)", "68/95% (passed stars only)"], rows
    )
    out += ["![calibration](figures/calibration.png)", "", *_by_trust(section["by_trust"])]
    out += ["### By bin", ""]
    for name in CALIBRATED:
        for quantity, bins in section["by_bin"][name].items():
            out.append(
                f"- {name} by {quantity}: "
                + "; ".join(
                    f"[{b['bin'][0]:g}, {b['bin'][1]:g}) n={b['n']} sigma={b['robust_sigma']:.3g} "
                    f"cov68={b['coverage_68']:.2f} cov95={b['coverage_95']:.2f}"
                    for b in bins
                )
            )
    return out + ["", "![coverage by bin](figures/coverage_by_bin.png)", ""]


def _misfit(section, by_bin):
    sim, test = section["simulated"], section["test"]
    rows = []
    for quantity, bins in section["by_bin"].items():
        for b in bins:
            coverage = [
                next(c for c in by_bin[name][quantity] if c["bin"] == b["bin"])["coverage_68"]
                for name in CALIBRATED
            ]
            rows.append(
                [
                    f"{quantity} [{b['bin'][0]:g}, {b['bin'][1]:g})",
                    b["n"],
                    f"{b['median']:.1f}",
                    f"{b['above']:.2f}",
                    " / ".join(f"{c:.2f}" for c in coverage),
                ]
            )
    return [
        "### Where and why coverage falls short",
        "",
        "Misfit = 2 [log L(posterior median) - log L(APOGEE labels)]: how strongly a star's own "
        "tokens, through the emulator and the noise model, prefer the posterior median to "
        f"APOGEE's labels. Above {section['threshold']:.1f} (the 95% point of chi-square with "
        "5 degrees of freedom) the data reject APOGEE's labels. With a correct emulator this "
        f"happens for {sim['above']:.0%} of stars (the SBC stars, simulated through the "
        f"emulator and inferred the same way: {sim['n']} stars, median misfit "
        f"{sim['median']:.1f}); on the test stars for {test['above']:.0%} ({test['n']} stars "
        f"with all five APOGEE labels, median {test['median']:.1f}). Where the misfit is high "
        "the emulator does not reproduce the observed XP tokens at APOGEE's labels, so no "
        "sampler can put APOGEE's labels inside the intervals: the bins that miss coverage "
        "are the bins where the emulator is wrong. APOGEE's own label errors, not folded in "
        "here, add to the misfit a little.",
        "",
        *_table(
            ["bin", "n", "median misfit", "fraction rejecting APOGEE", "68% cov. teff/logg/fe_h"],
            rows,
        ),
    ]


def _methods(section):
    rows = []
    for method, result in section.items():
        for name in CALIBRATED:
            r = result["labels"][name]
            rows.append(
                [
                    method,
                    name,
                    f"{r['robust_sigma']:.3g}",
                    f"{r['coverage']['0.68']:.3f}",
                    f"{r['coverage']['0.95']:.3f}",
                    f"{result.get('ok_fraction', float('nan')):.2f}",
                ]
            )
    agreement = [
        [method, name]
        + [
            f"{result['vs_nuts'][name]['median_abs_shift_in_reference_sd']:.2f}",
            f"{result['vs_nuts'][name]['median_width_ratio']:.2f}",
        ]
        for method, result in section.items()
        if "vs_nuts" in result
        for name in LABEL_INPUTS
    ]
    return [
        "## 2. NUTS vs importance sampling vs SVI on the same held-out stars",
        "",
        *_table(["method", "label", "robust sigma", "68%", "95%", "passed checks"], rows),
        "Agreement with NUTS, star by star (medians over all the stars):",
        "",
        *_table(
            ["method", "label", "abs(median - NUTS median) / NUTS sd", "sd / NUTS sd"], agreement
        ),
    ]


def _sbc_rows(section):
    """Table rows (method, stars, p per parameter) and rank shapes of the failing tests."""
    rows, failures = [], []
    for method in (m for m in section if m != "arrays"):
        labels = section[method]["labels"]
        rows.append(
            [method, section[method]["n"]] + [f"{labels[n]['p_value']:.3g}" for n in LABEL_INPUTS]
        )
        failures += [
            f"- {method} {name}: {_rank_shape(r['counts'])}"
            for name, r in labels.items()
            if r["p_value"] <= SBC_ALPHA
        ]
    return rows, failures


def _sbc(section, truth_sigma, noise):
    rows, failures = _sbc_rows(section)
    truth_rows, truth_failures = _sbc_rows(truth_sigma)
    return [
        "## 3. Simulation-based calibration",
        "",
        f"Chi-square test of uniform ranks (10 bins); p-values per parameter (pass: p > {SBC_ALPHA}).",
        "",
        *_table(["method", "stars", *LABEL_INPUTS], rows),
        "![SBC](figures/sbc.png)",
        "",
        *(["Shape of the failing rank histograms:", "", *failures, ""] if failures else []),
        "The SBC stars' noise is drawn with the emulator's sigma at their true labels; the "
        "likelihood fixes it at the amortized anchor (docs/inference.md says why). The "
        "emulator's sigma dominates the error budget (median "
        f"{noise['emulator_over_obs_error']:.1f} x the observational error), and per star "
        "the simulated / assumed total noise has median "
        f"{noise['p50']:.2f}, quartiles {noise['p25']:.2f}-{noise['p75']:.2f}, 5-95% "
        f"{noise['p5']:.2f}-{noise['p95']:.2f}: stars whose true noise exceeds the assumed "
        "one get posteriors too narrow, and so ranks in the outer bins, whatever the sampler.",
        "",
        "### Controlled test: the likelihood's sigma at the true labels",
        "",
        "The same simulated stars, with the same noise draws and sampler settings, inferred with "
        "the emulator sigma taken at each star's true labels (`anchors=` of `run_catalogue`), "
        "so that the likelihood's noise is the noise the stars were simulated with:",
        "",
        *_table(["method", "stars", *LABEL_INPUTS], truth_rows),
        "![SBC, sigma at true labels](figures/sbc_truth_sigma.png)",
        "",
        *(
            ["Shape of the failing rank histograms:", "", *truth_failures, ""]
            if truth_failures
            else ["Every parameter passes for every method.", ""]
        ),
    ]


def _reanchored(section):
    """SBC and held-out coverage as the emulator sigma is re-anchored pass by pass."""
    rows = [
        [k + 1]
        + [f"{tests[n]['p_value']:.3g}" for n in LABEL_INPUTS]
        + [f"{cov[n]['0.68']:.3f} / {cov[n]['0.95']:.3f}" for n in CALIBRATED]
        for k, (tests, cov) in enumerate(zip(section["sbc"], section["check"], strict=True))
    ]
    first, last = section["check"][0], section["check"][-1]
    failing = _reanchored_failures(section)
    return [
        "### Re-anchoring the sigma at the posterior medians (no truth needed)",
        "",
        "Importance sampling repeated, each pass taking the emulator sigma at the previous "
        "pass's posterior medians (pass 1: the amortized anchor, as above). SBC p-values on the "
        f"{section['n']['sbc']} SBC stars, and 68% / 95% coverage of APOGEE (errors folded in) "
        f"on the {section['n']['check']} check stars:",
        "",
        *_table(
            ["pass", *(f"SBC {n}" for n in LABEL_INPUTS), *(f"{n} coverage" for n in CALIBRATED)],
            rows,
        ),
        f"After pass {len(rows)} the SBC test "
        + ("passes for every parameter" if not failing else "fails for " + ", ".join(failing))
        + "; the mean distance of the check stars' 68/95% coverage from nominal goes from "
        f"{_coverage_gap(first):.3f} (pass 1) to {_coverage_gap(last):.3f}.",
        "",
    ]


def _reanchored_failures(section):
    """The parameters whose SBC test fails after the last re-anchoring pass."""
    return [n for n, t in section["sbc"][-1].items() if t["p_value"] <= SBC_ALPHA]


def _coverage_gap(coverage):
    """Mean |coverage - nominal| over the calibrated labels at 68% and 95%."""
    gaps = [
        abs(coverage[n][level] - float(level)) for n in CALIBRATED for level in ("0.68", "0.95")
    ]
    return sum(gaps) / len(gaps)


def _rank_shape(counts):
    """What a rank histogram's departure from uniform says about the posteriors."""
    n, k = sum(counts), len(counts)
    outer = (counts[0] + counts[-1]) / n
    low_minus_high = (sum(counts[: k // 2]) - sum(counts[k - k // 2 :])) / n
    expected, spread = 2 / k, 2 * (2 / k * (1 - 2 / k) / n) ** 0.5  # two binomial sd
    words = []
    if outer > expected + spread:
        words.append(f"outer bins hold {outer:.0%} of ranks (uniform: {expected:.0%}): too narrow")
    elif outer < expected - spread:
        words.append(f"outer bins hold {outer:.0%} of ranks (uniform: {expected:.0%}): too wide")
    if abs(low_minus_high) > 2 / n**0.5:
        side = "below" if low_minus_high > 0 else "above"
        words.append(f"posteriors sit {side} the truth more often than not ({low_minus_high:+.0%})")
    return "; ".join(words) or "no clear width or bias pattern"


def _extinction(section):
    rows = [
        [
            name,
            f"{r['A55_over_AK']:.2f}",
            f"{r['correlation']:.3f}",
            f"{r['rms_residual_over_A55']:.3f}",
        ]
        for name, r in section["types"].items()
    ]
    return [
        "## 4. Extinction curve",
        "",
        "d(-2.5 log10 flux token)/d a_k from the emulator at a_k = 0.05, fitted as "
        "s x A(lambda)/A(55) [Fitzpatrick 2019, R55 = 3.02] + c (tokens are normalised by "
        "the RP flux, hence c); s is the learned A(55)/A(K).",
        "",
        *_table(["type", "A55/AK", "correlation with F19", "RMS residual / A55"], rows),
        "![extinction](figures/extinction.png)",
        "",
    ]


def _hidden(section):
    rows = [
        [
            name,
            f"{r['coverage']['0.68']:.3f}",
            f"{r['coverage']['0.95']:.3f}",
            f"{r['median_relative_error']:.3f}",
        ]
        for name, r in section["tokens"].items()
    ]
    all_ = section["coverage_all"]
    return [
        "## 5. Unobserved spectra",
        "",
        f"{section['n']} test stars with flux tokens {section['hidden_tokens']} hidden; "
        f"posterior-predictive coverage of the true (observed) values over all hidden tokens: "
        f"68% -> {all_['0.68']:.3f}, 95% -> {all_['0.95']:.3f}.",
        "",
        *_table(["token", "68%", "95%", "median |relative error|"], rows),
        "![hidden](figures/hidden.png)",
        "",
    ]


def _loci(section):
    rows = [
        [c, f"{s['robust_sigma']:.3f}", f"{s['bias']:+.3f}", s["n"]]
        for c, s in section["emulated_minus_observed"].items()
    ]
    return [
        "## 6. Stellar loci",
        "",
        "Colours emulated at each test star's APOGEE labels and a_k minus its observed colours.",
        "",
        *_table(["colour", "robust sigma [mag]", "bias [mag]", "n"], rows),
        "![loci](figures/loci.png)",
        "",
    ]


def _verdict(results):
    cal = results["heldout"]["calibration"]
    misses = [
        f"{name} {level}: {cal[name]['coverage'][level]:.3f}"
        for name in CALIBRATED
        for level in ("0.68", "0.95")
        if abs(cal[name]["coverage"][level] - float(level)) > TARGET
    ]
    sbc_fail, truth_fail = _failed_tests(results["sbc"]), _failed_tests(results["sbc_truth_sigma"])
    reanchored_fail = _reanchored_failures(results["reanchored"])
    return [
        "## Targets",
        "",
        "- 68% and 95% coverage within 3 points of nominal for teff, logg, fe_h: "
        + ("met." if not misses else "missed: " + "; ".join(misses) + "."),
        "- SBC uniformity for every parameter: "
        + ("passed." if not sbc_fail else "failed for " + "; ".join(sbc_fail) + "."),
        "- The same with the likelihood's sigma at the true labels (controlled test): "
        + ("passed." if not truth_fail else "failed for " + "; ".join(truth_fail) + "."),
        "- Re-anchored importance sampling (no truth): SBC "
        + ("passed" if not reanchored_fail else "failed for " + ", ".join(reanchored_fail))
        + f" after pass {len(results['reanchored']['sbc'])}.",
        "",
    ]


def _failed_tests(section):
    return [
        f"{method} {name} (p={r['p_value']:.2g})"
        for method, result in section.items()
        if method != "arrays"
        for name, r in result["labels"].items()
        if r["p_value"] <= SBC_ALPHA
    ]
