"""The report's progress across stops: each finished section's results and figures are saved
as soon as it finishes (``results.partial.json``, ``figures.partial/``), a rerun of the same
config and inference setup keeps them, and the finished report replaces ``results.json``,
``figures/`` and ``REPORT.md`` together, so the three always describe one model."""

import json
import shutil
from pathlib import Path

from bayesfm.common.files import atomic_write_text

PARTIAL_RESULTS = "results.partial.json"
PARTIAL_FIGURES = "figures.partial"


def saved_sections(out: Path, config: dict, fingerprint: str, names) -> dict:
    """The sections ``names`` that an interrupted run of this config and setup finished."""
    path = out / PARTIAL_RESULTS
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("config") != config or saved.get("model_prior_noise_sha256") != fingerprint:
        print(f"[report] {path} belongs to other settings or another model: starting afresh")
        return {}
    kept = {name: saved[name] for name in names if name in saved}
    if kept:
        print(f"[report] resuming: {', '.join(kept)} finished in an earlier run ({path})")
    return kept


def save_progress(out: Path, results: dict, names) -> None:
    """Write what is finished so far (without the in-memory arrays)."""
    atomic_write_text(
        out / PARTIAL_RESULTS, json.dumps(without_arrays(results, names), indent=1, default=float)
    )


def without_arrays(results: dict, names) -> dict:
    """``results`` with each section's ``arrays`` (figure and later-section inputs) left out."""
    return {
        key: {k: v for k, v in value.items() if k != "arrays"} if key in names else value
        for key, value in results.items()
    }


def publish(out: Path, results: dict, names, markdown: str) -> None:
    """Replace the report's figures, results.json and REPORT.md with the finished run's."""
    partial = out / PARTIAL_FIGURES
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for figure in sorted(partial.glob("*.png")) if partial.exists() else []:
        shutil.move(str(figure), figures / figure.name)
    atomic_write_text(
        out / "results.json", json.dumps(without_arrays(results, names), indent=1, default=float)
    )
    atomic_write_text(out / "REPORT.md", markdown)
    (out / PARTIAL_RESULTS).unlink(missing_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
