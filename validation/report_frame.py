"""The report's opening and closing: how to regenerate it, the scope of the run, the targets
and the run time (the sections' own text is in ``sections``)."""

from sections import NAMES, reanchored
from sections.sbc import failed_tests
from sections.shared import CALIBRATED, TARGET


def opening(results) -> list[str]:
    return ["# bayesfm validation report", "", *_regenerate(results), "", *_scope(results)]


def closing(results) -> list[str]:
    return [*_targets(results), *_run_time(results)]


def _regenerate(results):
    """How to regenerate the report, how long that takes, and which run wrote which section."""
    first, total = results["first_computed_seconds"], results["seconds"]["total"]
    # this invocation's wall time counts the loading of resumed steps too: an upper bound
    hours = (sum(first.values()) + total) / 3600
    command = "python validation/report.py" + (
        f" --config {results['config_file']}" if results["config_file"] else ""
    )
    lines = [
        f"Regenerate: `{command}`. From scratch it takes about {hours:.1f} h on the machine "
        "that wrote this; a rerun resumes the expensive steps from the config's work_dir (this "
        f"invocation: {total / 60:.0f} min). Every number below is also in "
        "`results.json`, next to this file."
    ]
    kept = [name for name in NAMES if name not in results["recomputed"]]
    if kept:
        lines += [
            "",
            f"This invocation computed {', '.join(results['recomputed'])}; {', '.join(kept)} "
            "come from an earlier run of the same config and model (interrupted and resumed, "
            "or completed by `--only`).",
        ]
    return lines


def _scope(results):
    c = results["config"]
    n, v = c["nuts_catalogue"]["nuts"], c["nuts_catalogue"]["convergence"]
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


def _targets(results):
    cal = results["heldout"]["calibration"]
    misses = [
        f"{name} {level}: {cal[name]['coverage'][level]:.3f}"
        for name in CALIBRATED
        for level in ("0.68", "0.95")
        if abs(cal[name]["coverage"][level] - float(level)) > TARGET
    ]
    sbc_fail, truth_fail = failed_tests(results["sbc"]), failed_tests(results["sbc_truth_sigma"])
    sampler_fail = failed_tests({"importance": results["sbc_emulator_labels"]["importance"]})
    reanchored_fail = reanchored.failures(results["reanchored"])
    return [
        "## Targets",
        "",
        "- 68% and 95% coverage within 3 points of nominal for teff, logg, fe_h: "
        + ("met." if not misses else "missed: " + "; ".join(misses) + "."),
        "- SBC uniformity for every parameter: "
        + ("passed." if not sbc_fail else "failed for " + "; ".join(sbc_fail) + "."),
        "- The same with the likelihood's sigma at the true labels (controlled test): "
        + ("passed." if not truth_fail else "failed for " + "; ".join(truth_fail) + "."),
        "- The same on the emulator's labels, no label scatter (the sampler alone): "
        + ("passed." if not sampler_fail else "failed for " + "; ".join(sampler_fail) + "."),
        "- Re-anchored importance sampling (no truth): SBC "
        + ("passed" if not reanchored_fail else "failed for " + ", ".join(reanchored_fail))
        + f" after pass {len(results['reanchored']['sbc'])}.",
        "",
    ]


def _run_time(results):
    return [
        "## Run time",
        "",
        "Seconds each resumable run took when it was first computed (summed over its chunks; "
        "cached in the work_dir):",
        "",
        *[f"- {name}: {sec:.0f} s" for name, sec in results["first_computed_seconds"].items()],
        "",
        "Wall time of the invocation that wrote this report, per section (a resumed run counts "
        "only its loading; the from-scratch figure above adds the two lists):",
        "",
        *[f"- {name}: {seconds:.0f} s" for name, seconds in results["seconds"].items()],
        "",
    ]
