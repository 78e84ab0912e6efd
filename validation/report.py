"""Validation report: held-out APOGEE accuracy, calibration, SBC, extinction curve, hidden spectra, loci.

Run:  python validation/report.py [--config configs/validation/session.json] [--only SECTION ...]

Writes REPORT.md, results.json and figures/*.png to validation/ (or ``--out``). Without
``--config`` it runs the full report (``ValidationConfig``'s defaults); a config file holds
only the settings that differ. The expensive parts (catalogue runs, SBC fits) go under the
config's ``work_dir`` and resume when the command is rerun, so an interrupted report loses
at most one chunk, and each section's results are saved as it finishes, so that a rerun
(another session, even without the work_dir) computes only the sections still missing
(``report_progress``). ``--only SECTION ...`` recomputes just those sections (and those they
use) and keeps the rest from results.json. The sections are the modules of
validation/sections/, in the order of ``sections.REGISTRY``.
"""

import argparse
import json
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
from report_config import ValidationConfig
from report_context import ReportContext
from report_frame import closing, opening
from report_progress import PARTIAL_FIGURES, publish, save_progress, saved_sections
from sections import NAMES, REGISTRY, compute_order

from bayesfm.common.jsonio import to_json
from bayesfm.infer.setup import StarInference


def main():
    args = _arguments()
    matplotlib.use("Agg")
    config = ValidationConfig.load(args.config)
    start = time.perf_counter()
    setup = StarInference.default()
    fingerprint = setup.fingerprint()
    if args.only:
        computing = compute_order(args.only)
        kept = kept_results(args.out / "results.json", to_json(config), fingerprint, computing)
    else:
        kept = saved_sections(args.out, to_json(config), fingerprint, NAMES)
        computing = compute_order([name for name in NAMES if name not in kept])
    ctx = ReportContext(config, setup)
    results = {
        "config": to_json(config),
        "config_file": args.config,
        "model_prior_noise_sha256": fingerprint,
        "n_test": len(ctx.test),
    }
    results |= {name: kept[name] for name in NAMES if name in kept}
    results["recomputed"] = [section.NAME for section in computing]
    seconds = {}
    for section in computing:
        t0 = time.perf_counter()
        results[section.NAME] = section.compute(ctx, results)
        seconds[section.NAME] = time.perf_counter() - t0
        write_figures(results, [section], args.out / PARTIAL_FIGURES)
        save_progress(args.out, results, NAMES)
    results["seconds"] = {**seconds, "total": time.perf_counter() - start}
    results["first_computed_seconds"] = {
        step: value
        for section in REGISTRY
        if hasattr(section, "first_computed")
        for step, value in section.first_computed(results[section.NAME]).items()
    }
    markdown = opening(results)
    for section in REGISTRY:
        markdown += section.markdown(results)
    publish(args.out, results, NAMES, "\n".join(markdown + closing(results)))
    print(f"[report] wrote {args.out / 'REPORT.md'} in {time.perf_counter() - start:.0f} s")


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="settings that differ from the full report")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=NAMES,
        metavar="SECTION",
        help="recompute only these sections (and those they use); keep the others from the "
        f"results.json written with the same config. Sections: {', '.join(NAMES)}",
    )
    parser.add_argument("--out", type=Path, default=Path("validation"), help="report folder")
    return parser.parse_args()


def write_figures(results: dict, computing, folder: Path) -> None:
    """Draw the figures of the sections computed in this run (their arrays are at hand)."""
    folder.mkdir(parents=True, exist_ok=True)
    for section in computing:
        for name, draw in getattr(section, "FIGURES", {}).items():
            figure = draw(results)
            figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
            plt.close(figure)


def kept_results(path: Path, config: dict, fingerprint: str, computing) -> dict:
    """The results of an earlier run of this config and inference setup (model, prior and
    noise model, by ``StarInference.fingerprint``), whose other sections ``--only`` keeps."""
    if not path.exists():
        raise SystemExit(
            f"--only keeps sections from {path}, which does not exist: run the whole report"
        )
    kept = json.loads(path.read_text())
    changed = [key for key, value in config.items() if kept["config"].get(key) != value]
    if changed:
        raise SystemExit(
            f"{path} was written with different settings ({', '.join(changed)}) than this "
            "config: run the whole report, without --only"
        )
    if kept.get("model_prior_noise_sha256") != fingerprint:
        raise SystemExit(
            f"{path} was written with another model, prior or noise model than the shipped "
            "ones: run the whole report, without --only"
        )
    computed = {section.NAME for section in computing}
    missing = [name for name in NAMES if name not in computed and name not in kept]
    if missing:
        raise SystemExit(f"{path} has no {', '.join(missing)}: add them to --only")
    return kept


if __name__ == "__main__":
    main()
