"""Validation report: held-out APOGEE accuracy, calibration, SBC, extinction curve, hidden spectra, loci.

Run:  python validation/report.py [--config configs/validation.json]

Writes validation/REPORT.md, validation/results.json and validation/figures/*.png. The
expensive parts (catalogue runs, SBC fits) go under the config's ``work_dir`` and resume
when the command is rerun, so an interrupted report loses at most one chunk. ``--only
SECTION ...`` recomputes just those sections and keeps the rest from results.json.
"""

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from evaluate_transformer import xgboost_predictions
from report_figures import write_figures
from report_markdown import SECTIONS, write_markdown
from scipy import stats

from bayesfm.bayes.likelihood import CorrelatedTokens
from bayesfm.bayes.simulation import simulate_stars
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_draws
from bayesfm.common.metrics import residual_stats
from bayesfm.infer.batched_svi import run_batched_svi
from bayesfm.infer.calibration import (
    central_coverage,
    pit_values,
    rank_uniformity,
    sbc_ranks,
    z_scores,
)
from bayesfm.infer.settings import SviConfig
from bayesfm.infer.setup import StarInference, amortized_labels, prepare_stars
from bayesfm.sources.library import data_file, load_library
from bayesfm.tokens.labels import LABEL_INPUTS
from bayesfm.tokens.labels import LABELS as SPECTROSCOPIC
from bayesfm.tokens.split import split_mask
from bayesfm.tokens.star_tokens import StarTokens

LABELS = tuple(SPECTROSCOPIC)
SBC_METHODS = ("importance", "svi", "nuts")
BINS = {  # reference quantity -> bin edges
    "teff": [3000, 4000, 4500, 5000, 5500, 6000, 8000],
    "logg": [-1, 1.5, 2.5, 3.5, 4.2, 6],
    "snr": [0, 100, 200, 400, 1e5],
    "a_k": [-1, 0.02, 0.05, 0.1, 0.3, 5],
}
USES = {"misfit": ("heldout", "sbc")}  # sections whose arrays another section needs
RESULTS = Path("validation/results.json")
FIGURES = Path("validation/figures")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/validation.json")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help="recompute only these sections (and those they use); keep the others from "
        f"{RESULTS} written with the same config. Sections: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args()
    config = json.loads(Path(args.config).read_text())
    computing = set(args.only or SECTIONS)
    computing |= {used for name in computing for used in USES.get(name, ())}
    setup = StarInference.default()
    fingerprint = setup.fingerprint()
    kept = kept_results(config, fingerprint, computing) if args.only else {}
    work = Path(config["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    library = load_library(binning=setup.model.vocabulary.binning)
    tokens = library.tokens
    splits = {s: split_mask(tokens.source_id, s) for s in ("train", "validation", "test")}
    test_rows = np.flatnonzero(splits["test"])[: config["test_stars"]]
    test = tokens.take(test_rows)
    snr = library.snr[test_rows]
    catalogue = CatalogueConfig.from_dict(
        {**config["catalogue"], "seed": config["seed"], "save_draws": True}
    )
    nuts_catalogue = CatalogueConfig.from_dict(  # the NUTS cross-check and NUTS SBC
        {
            **config["catalogue"],
            **config.get("nuts_catalogue", {}),
            "method": "nuts",
            "seed": config["seed"],
            "save_draws": True,
        }
    )
    svi_config = SviConfig(**config["svi"])
    results = {
        "config": config,
        "config_file": args.config,
        "model_prior_noise_sha256": fingerprint,
        "n_test": len(test),
    }
    results["nuts_settings"] = {
        key: nuts_catalogue.to_dict()[key] for key in ("nuts", "convergence")
    }
    results |= {name: kept[name] for name in SECTIONS if name not in computing}
    results["recomputed"] = [name for name in SECTIONS if name in computing]
    timings, first_computed = {}, dict(kept.get("first_computed_seconds", {}))

    def timed(name, fn, *a):
        t0 = time.perf_counter()
        out = fn(*a)
        timings[name] = time.perf_counter() - t0
        print(f"[report] {name}: {timings[name]:.0f} s", flush=True)
        return out

    if "heldout" in computing:
        held = timed(
            "held-out catalogue",
            catalogue_draws,
            test,
            work / "heldout",
            replace(catalogue, method=config["test_method"]),
            setup,
        )
        amortized = amortized_labels(setup, test)
        observables = [n for n in setup.emulator.outputs if n in tokens.names]
        xgb_all = timed("xgboost", xgboost_predictions, tokens, observables, list(LABELS), splits)
        xgb = {k: v[: len(test)] for k, v in xgb_all.items()}
        results["heldout"] = heldout_section(test, held, amortized, xgb, snr)
        first_computed["held-out catalogue"] = held["seconds"]

    check = test.take(np.arange(min(config["method_check_stars"], len(test))))
    if "methods" in computing:
        methods = {}
        for method, settings in (("nuts", nuts_catalogue), ("importance", catalogue)):
            methods[method] = timed(
                f"{method} on {len(check)} stars",
                catalogue_draws,
                check,
                work / f"check_{method}",
                replace(settings, method=method),
                setup,
            )
        methods["svi"] = timed(
            "svi on check stars",
            svi_draws,
            setup,
            check,
            work / "check_svi.npz",
            svi_config,
            config["seed"],
        )
        results["methods"] = methods_section(check, methods)
        first_computed |= {f"{m} on check stars": r["seconds"] for m, r in methods.items()}

    sbc = sbc_stars(setup, test, config)
    sbc_settings = (config, (catalogue, nuts_catalogue), svi_config)
    if "sbc" in computing:
        results["sbc"] = timed("sbc", sbc_section, setup, sbc, *sbc_settings, work / "sbc")
    if "sbc_truth_sigma" in computing:  # the likelihood's sigma at the true labels instead
        results["sbc_truth_sigma"] = timed(
            "sbc, sigma at true labels",
            sbc_section,
            setup,
            sbc,
            *sbc_settings,
            work / "sbc_truth_sigma",
            config["sbc_truth_sigma_nuts_stars"],
            sbc[1],
        )
    for name in ("sbc", "sbc_truth_sigma"):
        if name in computing:
            first_computed |= {f"{name} {m}": results[name][m]["seconds"] for m in SBC_METHODS}
    if "reanchored" in computing:
        results["reanchored"] = timed(
            "re-anchored importance sampling",
            reanchor_section,
            setup,
            sbc,
            check,
            catalogue,
            config,
            work,
        )
        first_computed["re-anchored passes"] = results["reanchored"]["seconds"]
    if "sbc_noise" in computing:
        results["sbc_noise"] = anchor_noise_section(setup, sbc)
    if "misfit" in computing:
        results["misfit"] = timed(
            "misfit",
            misfit_section,
            setup,
            test,
            results["heldout"]["arrays"]["medians"],
            snr,
            sbc,
            results["sbc"]["arrays"]["importance_medians"],
        )
    if "extinction_curve" in computing:
        results["extinction_curve"] = timed("extinction curve", extinction_section, setup)
    if "hidden_spectrum" in computing:
        results["hidden_spectrum"] = timed(
            "hidden spectrum", hidden_section, setup, test, config, catalogue, work
        )
        first_computed["hidden spectrum"] = results["hidden_spectrum"]["seconds"]
    if "loci" in computing:
        results["loci"] = timed("loci", loci_section, setup, test)
    results["seconds"] = {**timings, "total": time.perf_counter() - start}
    results["first_computed_seconds"] = first_computed

    FIGURES.mkdir(parents=True, exist_ok=True)
    write_figures(results, FIGURES, computing)
    for section in results.values():
        if isinstance(section, dict):
            section.pop("arrays", None)
    RESULTS.write_text(json.dumps(results, indent=1, default=float))
    write_markdown(results, Path("validation/REPORT.md"))
    print(f"[report] wrote validation/REPORT.md in {time.perf_counter() - start:.0f} s")


def kept_results(config: dict, fingerprint: str, computing) -> dict:
    """The results of an earlier run of this config and inference setup (model, prior and
    noise model, by ``StarInference.fingerprint``), whose other sections ``--only`` keeps."""
    if not RESULTS.exists():
        raise SystemExit(
            f"--only keeps sections from {RESULTS}, which does not exist: run the whole report"
        )
    kept = json.loads(RESULTS.read_text())
    changed = [key for key, value in kept["config"].items() if config.get(key) != value]
    if changed:
        raise SystemExit(
            f"{RESULTS} was written with different settings ({', '.join(changed)}) than this "
            "config: run the whole report, without --only"
        )
    if kept.get("model_prior_noise_sha256") != fingerprint:
        raise SystemExit(
            f"{RESULTS} was written with another model, prior or noise model than the shipped "
            "ones: run the whole report, without --only"
        )
    missing = [name for name in SECTIONS if name not in computing and name not in kept]
    if missing:
        raise SystemExit(f"{RESULTS} has no {', '.join(missing)}: add them to --only")
    return kept


# --- posteriors ---------------------------------------------------------------------------


def catalogue_draws(stars: StarTokens, out: Path, config: CatalogueConfig, setup, anchors=None):
    """Run (or resume) a catalogue; return its table, draws [n, S, 5] in star order and the
    seconds its chunks took when first computed."""
    table = run_catalogue(stars, out, config, setup, anchors=anchors)
    return {"table": table, "draws": load_draws(out), "seconds": float(table["seconds"].sum())}


def svi_draws(setup, stars: StarTokens, path: Path, config: SviConfig, seed: int, anchors=None):
    """Batched SVI posteriors of ``stars`` (cached in ``path`` for the same stars, settings,
    seed and sigma anchors); draws [n, S, 5] physical and the seconds they took."""
    anchored = "amortized" if anchors is None else np.asarray(anchors).round(4).tolist()
    settings = {**asdict(config), "seed": seed, "anchors": anchored, "setup": setup.fingerprint()}
    settings = json.dumps(settings, sort_keys=True)
    if path.exists():
        cached = np.load(path, allow_pickle=False)
        same = {"source_id", "settings", "seconds"} <= set(cached.files) and (
            np.array_equal(cached["source_id"], stars.source_id)
            and str(cached["settings"]) == settings
        )
        if same:
            return {"draws": cached["draws"], "seconds": float(cached["seconds"])}
    start = time.perf_counter()
    draws = np.full((len(stars), config.num_draws, len(LABEL_INPUTS)), np.nan, np.float32)
    data, usable, _, mean, _ = prepare_stars(setup, stars, anchors)
    z, _ = run_batched_svi(
        setup, data, setup.scaling.normalise(mean), jax.random.PRNGKey(seed), config
    )
    draws[usable] = setup.scaling.physical(z)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, draws=draws, source_id=stars.source_id, settings=np.str_(settings), seconds=seconds
    )
    return {"draws": draws, "seconds": seconds}


# --- held-out accuracy and calibration ------------------------------------------------------


def reference(stars: StarTokens, name):
    values, errors = stars.column(name)
    return np.asarray(values, float), np.asarray(errors, float)


def calibration(draws, truth, error) -> dict:
    pit = pit_values(draws, truth, error)
    z = z_scores(draws, truth, error)
    return {
        "coverage": central_coverage(pit),
        "z_sd": float(np.nanstd(z)),
        "z_median": float(np.nanmedian(z)),
        "n": int(np.isfinite(pit).sum()),
        "pit": pit,
        "z": z,
    }


def heldout_section(test, held, amortized, xgb, snr) -> dict:
    draws, table = held["draws"], held["table"]
    ok = table["ok"].to_numpy(bool)
    medians = np.nanmedian(draws, axis=1)
    out = {"paths": table["path"].value_counts(normalize=True).to_dict(), "ok_fraction": ok.mean()}
    out["accuracy"], out["calibration"], out["calibration_ok_only"], out["by_bin"] = {}, {}, {}, {}
    arrays = {"medians": medians}
    for i, name in enumerate(LABEL_INPUTS):
        truth, error = reference(test, name)
        row = {"posterior_median": residual_stats(medians[:, i], truth)}
        row["amortized"] = residual_stats(amortized[0][:, i], truth)
        if name in xgb:
            row["xgboost"] = residual_stats(xgb[name], truth)
        out["accuracy"][name] = row
        cal = calibration(draws[..., i], truth, error)
        arrays[name] = {"pit": cal.pop("pit"), "z": cal.pop("z"), "truth": truth}
        out["calibration"][name] = cal
        cal_ok = calibration(draws[ok, :, i], truth[ok], error[ok])
        out["calibration_ok_only"][name] = {k: cal_ok[k] for k in ("coverage", "z_sd", "n")}
        out["by_bin"][name] = binned(medians[:, i], draws[..., i], truth, error, test, snr)
    out["by_trust"] = trust_section(test, draws, medians, table["trusted"].to_numpy(bool))
    out["arrays"] = arrays
    return out


def trust_section(test, draws, medians, trusted) -> dict:
    """Share of trusted stars, and robust sigma and 68/95% coverage of trusted and flagged
    stars (``bayesfm.trust``): flags that mean something separate the two."""
    fitted = np.isfinite(medians).all(axis=1)
    out = {"trusted_fraction": float(trusted[fitted].mean())}
    for group, mask in (("trusted", fitted & trusted), ("flagged", fitted & ~trusted)):
        out[group] = {"n": int(mask.sum())}
        for i, name in enumerate(LABEL_INPUTS):
            truth, error = reference(test, name)
            coverage = calibration(draws[mask, :, i], truth[mask], error[mask])["coverage"]
            out[group][name] = {
                "robust_sigma": residual_stats(medians[mask, i], truth[mask])["robust_sigma"],
                "coverage_68": coverage["0.68"],
                "coverage_95": coverage["0.95"],
            }
    return out


def bin_members(test, snr):
    """(quantity, [lo, hi], star mask) for every bin of BINS holding at least 10 test stars."""
    quantities = {"snr": snr, **{q: reference(test, q)[0] for q in BINS if q != "snr"}}
    for quantity, edges in BINS.items():
        which = np.digitize(quantities[quantity], edges) - 1
        for b in range(len(edges) - 1):
            if (which == b).sum() >= 10:
                yield quantity, [edges[b], edges[b + 1]], which == b


def binned(median, draws, truth, error, test, snr) -> dict:
    """Accuracy and 68/95% coverage of one label per bin of each reference quantity."""
    out = {quantity: [] for quantity in BINS}
    for quantity, edges, sel in bin_members(test, snr):
        cov = central_coverage(pit_values(draws[sel], truth[sel], error[sel]))
        out[quantity].append(
            {
                "bin": edges,
                **residual_stats(median[sel], truth[sel]),
                "coverage_68": cov["0.68"],
                "coverage_95": cov["0.95"],
            }
        )
    return out


def methods_section(check, methods) -> dict:
    out = {}
    for method, result in methods.items():
        draws = result["draws"]
        per_label = {}
        for i, name in enumerate(LABEL_INPUTS):
            truth, error = reference(check, name)
            cal = calibration(draws[..., i], truth, error)
            per_label[name] = {
                "coverage": cal["coverage"],
                "z_sd": cal["z_sd"],
                **residual_stats(np.nanmedian(draws[..., i], axis=1), truth),
            }
        out[method] = {"labels": per_label}
        if "table" in result:
            out[method]["ok_fraction"] = float(result["table"]["ok"].mean())
        if method != "nuts":
            out[method]["vs_nuts"] = agreement_with(draws, methods["nuts"]["draws"])
    return out


def agreement_with(draws, reference_draws) -> dict:
    """Per label, medians over stars of |median - reference median| / reference sd and of
    sd / reference sd (draws [n, S, 5])."""
    out = {}
    for i, name in enumerate(LABEL_INPUTS):
        ref_median = np.nanmedian(reference_draws[..., i], axis=1)
        ref_sd = np.nanstd(reference_draws[..., i], axis=1)
        shift = np.abs(np.nanmedian(draws[..., i], axis=1) - ref_median) / ref_sd
        width = np.nanstd(draws[..., i], axis=1) / ref_sd
        out[name] = {
            "median_abs_shift_in_reference_sd": float(np.nanmedian(shift)),
            "median_width_ratio": float(np.nanmedian(width)),
        }
    return out


# --- simulation-based calibration -------------------------------------------------------------


def simulated_catalogue(setup, templates: StarTokens, key):
    """Template stars with emulator-simulated outputs and the prior draws as their labels."""
    data, usable, *_ = prepare_stars(setup, templates)
    templates = templates.take(usable)
    truth, sim = simulate_stars(setup, data, key)
    values, errors = templates.values.copy(), templates.errors.copy()
    outputs = templates.index(setup.emulator.outputs)
    values[:, outputs] = np.where(sim.mask, sim.values, np.nan)
    labels = templates.index(LABEL_INPUTS)
    values[:, labels], errors[:, labels] = truth, 0.0
    return StarTokens(templates.source_id, templates.names, values, errors), truth


def sbc_stars(setup, test, config):
    """The SBC's simulated stars (templates: the first ``sbc_stars`` test stars) and truth."""
    n = min(config["sbc_stars"], len(test))
    key = jax.random.PRNGKey(config["seed"] + 1)
    return simulated_catalogue(setup, test.take(np.arange(n)), key)


def sbc_section(
    setup, sbc, config, catalogues, svi_config, work, nuts_stars=None, anchors=None
) -> dict:
    """Rank histograms and uniformity tests of importance sampling, SVI and NUTS (on the
    first ``nuts_stars``, default ``sbc_nuts_stars``) on the SBC stars; ``anchors``: labels
    at which the likelihood takes the emulator sigma (default: the amortized prediction)."""
    (sim, truth), (catalogue, nuts_catalogue) = sbc, catalogues
    k = min(config["sbc_nuts_stars"] if nuts_stars is None else nuts_stars, len(sim))
    runs = {
        "importance": catalogue_draws(
            sim, work / "importance", replace(catalogue, method="importance"), setup, anchors
        ),
        "svi": svi_draws(setup, sim, work / "svi.npz", svi_config, config["seed"] + 2, anchors),
        "nuts": catalogue_draws(
            sim.take(np.arange(k)),
            work / "nuts",
            nuts_catalogue,
            setup,
            None if anchors is None else anchors[:k],
        ),
    }
    out, ranks_out = {}, {}
    for method, run in runs.items():
        per_label, ranks_out[method] = rank_tests(run["draws"], truth, config["sbc_ranks"])
        out[method] = {"n": len(run["draws"]), "labels": per_label, "seconds": run["seconds"]}
    out["arrays"] = {
        "ranks": ranks_out,
        "num_ranks": config["sbc_ranks"],
        "importance_medians": np.nanmedian(runs["importance"]["draws"], axis=1),
    }
    return out


def rank_tests(draws, truth, num_ranks):
    """Per parameter: the SBC ranks of ``truth`` among ``draws`` [n, S, 5] (stars with at least
    ``num_ranks`` finite draws) and their uniformity test."""
    tests, ranks_of = {}, {}
    for i, name in enumerate(LABEL_INPUTS):
        ranks = np.array(
            [
                sbc_ranks(d[np.isfinite(d)][None], t[None], num_ranks)[0]
                for d, t in zip(draws[:, :, i], truth[: len(draws), i], strict=True)
                if np.isfinite(d).sum() >= num_ranks
            ]
        )
        tests[name] = {"n": len(ranks), **rank_uniformity(ranks, num_ranks)}
        ranks_of[name] = ranks
    return tests, ranks_of


def reanchor_section(setup, sbc, check, catalogue, config, work) -> dict:
    """Importance sampling repeated ``reanchor_passes`` times, each pass taking the emulator
    sigma at the previous pass's posterior medians (pass 1: the amortized anchor; no truth
    used): SBC uniformity on the SBC stars and coverage of APOGEE on the check stars."""
    (sim, truth), passes = sbc, config["reanchor_passes"]
    settings = replace(catalogue, method="importance")
    sbc_runs = reanchored_runs(
        setup, sim, (work / "sbc" / "importance", work / "reanchored" / "sbc"), settings, passes
    )
    check_runs = reanchored_runs(
        setup, check, (work / "check_importance", work / "reanchored" / "check"), settings, passes
    )
    return {
        "sbc": [rank_tests(run["draws"], truth, config["sbc_ranks"])[0] for run in sbc_runs],
        "check": [
            {
                label: calibration(run["draws"][:, :, i], *reference(check, label))["coverage"]
                for i, label in enumerate(LABEL_INPUTS)
            }
            for run in check_runs
        ],
        "n": {"sbc": len(sim), "check": len(check)},
        "seconds": sum(run["seconds"] for run in sbc_runs[1:] + check_runs[1:]),
    }


def reanchored_runs(setup, stars, folders, settings, passes) -> list:
    """``catalogue_draws`` of each pass. ``folders``: (the first pass's run, with the amortized
    anchor and shared with the report's other sections; the prefix of the later passes' runs,
    which take the sigma at the previous pass's posterior medians)."""
    (first_pass, later), runs, anchors = folders, [], None
    for k in range(1, passes + 1):
        out = first_pass if k == 1 else later.with_name(f"{later.name}_pass{k}")
        runs.append(catalogue_draws(stars, out, settings, setup, anchors))
        medians = np.nanmedian(runs[-1]["draws"], axis=1)
        anchors = np.where(np.isfinite(medians), medians, np.asarray(setup.scaling.loc)[None])
    return runs


def anchor_noise_section(setup, sbc) -> dict:
    """How far the likelihood's noise (emulator sigma at the amortized anchor) is from the
    noise the SBC stars were simulated with (emulator sigma at their true labels): per
    star, the median over tokens of the ratio of total 1-sigma noise, truth / anchor."""
    sim, truth = sbc
    data, usable, *_ = prepare_stars(setup, sim)
    _, at_truth = jax.vmap(setup.emulator.emulate)(jnp.asarray(truth[usable], jnp.float32))
    total = np.hypot(data.errors, np.asarray(at_truth)) / np.hypot(data.errors, data.emulator_sigma)
    per_star = np.nanmedian(np.where(data.mask, total, np.nan), axis=1)
    return {f"p{q}": float(np.percentile(per_star, q)) for q in (5, 25, 50, 75, 95)} | {
        "emulator_over_obs_error": float(np.median((data.emulator_sigma / data.errors)[data.mask]))
    }


# --- why coverage falls short --------------------------------------------------------------

CHI2_95 = float(stats.chi2.ppf(0.95, len(LABEL_INPUTS)))


def misfit(setup, stars: StarTokens, preferred, reference_labels) -> np.ndarray:
    """Per star, 2 [log L(preferred) - log L(reference_labels)] (both [n, 5] physical): how
    strongly its own tokens, through the emulator and noise model, prefer the first labels.
    NaN where a star has no tokens or either label set is incomplete."""
    data, usable, *_ = prepare_stars(setup, stars)
    x = np.stack([preferred[usable], reference_labels[usable]], axis=1)  # [m, 2, 5]
    complete = np.isfinite(x).all(axis=(1, 2))
    x = np.where(complete[:, None, None], x, np.asarray(setup.scaling.loc))

    def log_l(labels, d):
        mean, _ = jax.vmap(setup.emulator.emulate)(labels)
        tokens = CorrelatedTokens(
            mean, d.emulator_sigma, d.errors, d.mask, d.corr_chol, setup.noise
        )
        return tokens.log_prob(d.values)

    log_l = np.asarray(jax.jit(jax.vmap(log_l))(jnp.asarray(x, jnp.float32), data))
    out = np.full(len(stars), np.nan)
    out[usable] = np.where(complete, 2 * (log_l[:, 0] - log_l[:, 1]), np.nan)
    return out


def misfit_section(setup, test, medians, snr, sbc, sbc_medians) -> dict:
    """Do the test stars' tokens reject their APOGEE labels (emulator error) as often as
    the SBC stars (a correct emulator) reject their true labels?"""

    def summary(d):
        d = d[np.isfinite(d)]
        return {"n": len(d), "median": float(np.median(d)), "above": float(np.mean(d > CHI2_95))}

    apogee = np.stack([reference(test, name)[0] for name in LABEL_INPUTS], axis=1)
    real = misfit(setup, test, medians, apogee)
    sim, truth = sbc
    out = {
        "threshold": CHI2_95,
        "simulated": summary(misfit(setup, sim, sbc_medians, truth)),
        "test": summary(real),
        "by_bin": {quantity: [] for quantity in BINS},
    }
    for quantity, edges, sel in bin_members(test, snr):
        out["by_bin"][quantity].append({"bin": edges, **summary(real[sel])})
    return out


# --- extinction curve -----------------------------------------------------------------------

STELLAR_TYPES = {  # name -> teff, logg, fe_h, alpha_m
    "K giant": (4300, 2.0, 0.0, 0.05),
    "red clump": (4800, 2.5, 0.0, 0.0),
    "G dwarf": (5800, 4.4, 0.0, 0.0),
    "F dwarf": (6400, 4.2, -0.2, 0.0),
    "K dwarf": (4600, 4.6, 0.1, 0.0),
}
F19_R55 = 3.02  # Fitzpatrick et al. (2019) average R(55)


def fitzpatrick_on_tokens(centres_nm, width_nm):
    """A(lambda)/A(55) of Fitzpatrick (2019), averaged over each flux token's bin."""
    from astropy.io import fits

    with fits.open(data_file("fitzpatrick2019_gaiabprp_extinction.fits")) as hdul:
        wave_nm = np.asarray(hdul[1].data["wave"], float) / 10.0
        ratio = 1.0 + np.asarray(hdul[1].data["klambda55"], float) / F19_R55
    return np.array([ratio[np.abs(wave_nm - c) <= width_nm / 2].mean() for c in centres_nm])


def extinction_section(setup) -> dict:
    """d(-2.5 log10 flux token)/d a_k from the emulator vs Fitzpatrick (2019).

    Flux tokens are divided by the star's median RP flux, so the emulator's curve is
    (A_lambda - A_norm) / A_K: it is compared with F19 through a linear fit
    emulator = s * A_lambda/A_55 + c, whose slope s is A_55 / A_K.
    """
    names = [n for n in setup.emulator.outputs if n.startswith("xp_")]
    index = np.array([setup.emulator.outputs.index(n) for n in names])
    centres = np.array([float(n.split("_")[1]) for n in names])
    binning = setup.model.vocabulary.binning
    f19 = fitzpatrick_on_tokens(centres, binning.width_nm)

    def magnitudes(a_k, labels):
        mean, _ = setup.emulator.emulate(jax.numpy.append(jax.numpy.asarray(labels), a_k))
        return -2.5 * jax.numpy.log10(mean[index])

    slope_of = jax.jacfwd(magnitudes)
    out = {
        "wavelength_nm": centres.tolist(),
        "fitzpatrick2019_A_over_A55": f19.tolist(),
        "types": {},
    }
    for name, labels in STELLAR_TYPES.items():
        curve = np.asarray(slope_of(0.05, jax.numpy.asarray(labels, jax.numpy.float32)))
        design = np.stack([f19, np.ones_like(f19)], axis=1)
        (s, c), *_ = np.linalg.lstsq(design, curve, rcond=None)
        fitted = design @ [s, c]
        out["types"][name] = {
            "curve": curve.tolist(),
            "A55_over_AK": float(s),
            "offset": float(c),
            "rms_residual_over_A55": float(np.sqrt(np.mean((curve - fitted) ** 2)) / s),
            "correlation": float(np.corrcoef(curve, f19)[0, 1]),
        }
    return out


# --- unobserved spectra -----------------------------------------------------------------------


def hidden_section(setup, test, config, catalogue, work) -> dict:
    """Hide the flux tokens blueward of ``hidden_below_nm``, infer, predict them, compare."""
    n = min(config["hidden_stars"], len(test))
    stars = test.take(np.arange(n))
    hidden = [
        name
        for name in setup.emulator.outputs
        if name.startswith("xp_") and float(name.split("_")[1]) < config["hidden_below_nm"]
    ]
    columns = stars.index(hidden)
    values = stars.values.copy()
    true_values, true_errors = values[:, columns].copy(), stars.errors[:, columns].copy()
    values[:, columns] = np.nan
    masked = StarTokens(stars.source_id, stars.names, values, stars.errors)
    result = catalogue_draws(
        masked,
        work / "hidden",
        replace(catalogue, method="importance"),
        setup,
    )
    draws = result["draws"][:, :: max(1, result["draws"].shape[1] // 200)]
    out_index = np.array([setup.emulator.outputs.index(h) for h in hidden])
    scale_factor = np.asarray(setup.noise.total_scale)[out_index]
    emulate = jax.jit(jax.vmap(jax.vmap(setup.emulator.emulate)))
    mean, sigma = (np.asarray(a)[..., out_index] for a in emulate(np.nan_to_num(draws)))
    # predictive of the observed value: emulator draw + (emulator and observational) noise
    scale = scale_factor * np.sqrt(sigma**2 + true_errors[:, None] ** 2)
    pit = np.nanmean(stats.norm.cdf((true_values[:, None] - mean) / scale), axis=1)
    pit = np.where(np.isfinite(draws[:, :, 0]).all(axis=1)[:, None], pit, np.nan)
    per_token = {
        name: {
            "coverage": central_coverage(pit[:, j]),
            "median_relative_error": float(
                np.nanmedian(np.abs(np.median(mean[:, :, j], axis=1) / true_values[:, j] - 1))
            ),
        }
        for j, name in enumerate(hidden)
    }
    return {
        "hidden_tokens": hidden,
        "n": n,
        "coverage_all": central_coverage(pit.ravel()),
        "tokens": per_token,
        "seconds": result["seconds"],
    }


# --- stellar loci ---------------------------------------------------------------------------

LOCI = (("bp_rp", "j_k"), ("j_h", "j_k"), ("bp_rp", "g_k"))


def loci_section(setup, test) -> dict:
    """Colours emulated at each test star's APOGEE labels and extinction vs its observed ones."""
    colours = sorted({c for pair in LOCI for c in pair})
    index = np.array([setup.emulator.outputs.index(c) for c in colours])
    x = test.values[:, test.index(LABEL_INPUTS)]
    usable = np.isfinite(x).all(axis=1)
    emulate = jax.jit(jax.vmap(setup.emulator.emulate))
    emulated = np.full((len(test), len(colours)), np.nan)
    emulated[usable] = np.asarray(emulate(x[usable])[0])[:, index]
    observed = test.values[:, test.index(colours)]
    stats_ = {c: residual_stats(emulated[:, i], observed[:, i]) for i, c in enumerate(colours)}
    return {
        "colours": colours,
        "pairs": [list(p) for p in LOCI],
        "emulated_minus_observed": stats_,
        "arrays": {"emulated": emulated, "observed": observed},
    }


if __name__ == "__main__":
    main()
