"""Catalogues larger than memory: the input is read part by part (``bayesfm.sources.parts``),
each part is a resumable catalogue of its own under ``parts/<name>/``, and the joined
``catalogue.csv`` is written by streaming the parts' tables one after another.

Memory holds the model, one part's stars and one chunk's draws at a time, whatever the
number of parts. A rerun skips the finished parts without reading their input again (after
checking the input file is unchanged) and resumes the unfinished one chunk by chunk.
"""

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.common.errors import DataError
from bayesfm.common.files import atomic_path, atomic_write_text
from bayesfm.common.manifest import check_manifest
from bayesfm.infer.setup import StarInference
from bayesfm.sources.parts import InputPart

__all__ = ["run_catalogue_parts"]


def run_catalogue_parts(
    parts: Iterable[InputPart],
    out_dir,
    config: CatalogueConfig = CatalogueConfig(),
    setup: StarInference | None = None,
    model_path=None,
    *,
    input_name: str = "",
    client=None,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Posteriors for every star of every part, written under ``out_dir``; resumes.

    Args:
        parts: The input, part by part (e.g. ``xp_file_parts`` or ``parquet_parts``).
        out_dir: Output folder: run.json, parts/<name>/ (each a ``run_catalogue`` folder)
            and the joined catalogue.csv.
        config, setup, model_path, client, workers: As for ``run_catalogue``, per part.
        input_name: What the input is (a path or pattern), recorded in run.json.
        progress: Show a progress bar in stars/s.

    Returns:
        A summary: stars, parts, stars per path and stars passing their checks.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if setup is None:
        setup = StarInference.default(model_path)
    manifest = {
        "format_version": 1,
        "input": str(input_name),
        "model": str(model_path) if model_path is not None else "shipped default",
        "model_prior_noise_sha256": setup.fingerprint(),
        "config": config.to_dict(),
    }
    check_manifest(out / "run.json", manifest, "catalogue")
    bar = tqdm(unit="star", desc="catalogue", disable=not progress)
    folders = []
    for part in parts:
        folder = out / "parts" / part.name
        if not _finished(folder, part):
            stars = part.load()
            run_catalogue(
                stars,
                folder,
                config,
                setup,
                model_path,
                client=client,
                workers=workers,
                progress=False,
            )
        folders.append(folder)
        bar.update(_count_rows(folder / "catalogue.csv"))
        bar.set_postfix(parts=len(folders))
    bar.close()
    if not folders:
        raise DataError("the input has no parts (no files, or an empty table): nothing to fit")
    return _join_parts(folders, out / "catalogue.csv")


def _finished(folder: Path, part: InputPart) -> bool:
    """Whether the part's catalogue is complete; records or checks the part's identity."""
    record = folder / "part.json"
    if record.exists():
        recorded = json.loads(record.read_text())["identity"]
        if recorded != part.identity:
            raise DataError(
                f"input part {part.name} has changed since this run began (its content hash "
                "differs); rerun with the original input, or choose another --out"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"name": part.name, "identity": part.identity}))
    return (folder / "catalogue.csv").exists()


def _count_rows(csv: Path) -> int:
    with open(csv) as file:
        return sum(1 for _ in file) - 1


def _join_parts(folders, path: Path) -> dict:
    """Append the parts' tables into one CSV (one part in memory at a time); a summary."""
    paths, passed, stars = Counter(), 0, 0
    with atomic_path(path) as tmp:
        tmp.unlink(missing_ok=True)  # left by a killed join: appending must start afresh
        for k, folder in enumerate(folders):
            table = pd.read_csv(folder / "catalogue.csv", keep_default_na=False, na_values=[""])
            table.to_csv(tmp, mode="a", header=k == 0, index=False)
            paths.update(table["path"].fillna("").tolist())
            passed += int(table["ok"].sum())
            stars += len(table)
    return {"stars": stars, "parts": len(folders), "paths": dict(paths), "passed": passed}
