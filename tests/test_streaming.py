"""Catalogues streamed part by part: directories of Gaia archive files and Parquet tables."""

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.stream import run_catalogue_parts
from bayesfm.common.errors import DataError
from bayesfm.infer.importance import ImportanceConfig
from bayesfm.infer.setup import StarInference
from bayesfm.sources.archive import sample_xp_continuous
from bayesfm.sources.parts import InputPart, parquet_parts, xp_file_parts, xp_files

QUICK = CatalogueConfig(
    method="importance",
    outside_domain="posterior",
    chunk_size=100,
    importance=ImportanceConfig(
        num_draws=40,
        mode_rounds=1,
        quasi_newton_steps=2,
        refinements=0,
        num_keep=20,
        top_up_draws=0,
    ),
)


def _synthetic_xp_files(archive_dir, folder, rows_per_file):
    """Real archive records repeated under new source ids: one csv, one csv.gz, one csv."""
    raw = pd.read_csv(f"{archive_dir}/XP_CONTINUOUS_RAW.csv")
    ids = []
    for k, name in enumerate(("a.csv", "b.csv", "c.csv")):
        rows = raw.iloc[np.arange(rows_per_file) % len(raw)].copy()
        rows["source_id"] = 10**18 + k * rows_per_file + np.arange(rows_per_file)
        rows.to_csv(folder / name, index=False)
        ids += rows["source_id"].tolist()
    with open(folder / "b.csv", "rb") as plain, gzip.open(folder / "b.csv.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    (folder / "b.csv").unlink()
    (folder / "notes.txt").write_text("not an archive file")
    return ids


@pytest.fixture(scope="module")
def tiny_setup(tiny_model_path):
    return StarInference.default(tiny_model_path)


@pytest.mark.slow
def test_a_directory_of_archive_files_streams_with_every_star_once(
    archive_dir, tiny_setup, tiny_model_path, tmp_path
):
    inputs = tmp_path / "xp"
    inputs.mkdir()
    ids = _synthetic_xp_files(archive_dir, inputs, 1000)
    assert [p.name for p in xp_files(inputs)] == ["a.csv", "b.csv.gz", "c.csv"]
    assert xp_files(f"{inputs}/*.csv") == [inputs / "a.csv", inputs / "c.csv"]
    out = tmp_path / "out"
    summary = run_catalogue_parts(
        xp_file_parts(inputs), out, QUICK, tiny_setup, tiny_model_path, progress=False
    )
    assert summary["stars"] == 3000 and summary["parts"] == 3
    table = pd.read_csv(out / "catalogue.csv")
    assert table["source_id"].tolist() == ids  # file order, each star once
    assert np.isfinite(table["teff_median"]).all()
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["a.csv", "b.csv.gz", "c.csv"]

    loaded = []
    tracked = [
        InputPart(p.name, p.identity, lambda p=p: loaded.append(p.name) or p.load())
        for p in xp_file_parts(inputs)
    ]
    again = run_catalogue_parts(tracked, out, QUICK, tiny_setup, tiny_model_path, progress=False)
    assert again == summary and loaded == []  # a rerun reads no finished part again

    raw = pd.read_csv(inputs / "a.csv")
    raw.loc[0, "source_id"] += 7
    raw.to_csv(inputs / "a.csv", index=False)
    with pytest.raises(DataError, match="a.csv has changed"):
        run_catalogue_parts(
            xp_file_parts(inputs), out, QUICK, tiny_setup, tiny_model_path, progress=False
        )


@pytest.mark.slow
def test_a_parquet_table_larger_than_a_part_and_a_chunk_streams(
    archive_dir, tiny_setup, tiny_model_path, tmp_path
):
    spectra = sample_xp_continuous(f"{archive_dir}/XP_CONTINUOUS_RAW.csv")
    n = 700
    rows = np.arange(n) % len(spectra["source_id"])
    frame = pd.DataFrame(
        {
            "GAIA_ID": 2 * 10**18 + np.arange(n),
            "flux": list(spectra["flux"][rows]),
            "flux_error": list(spectra["flux_error"][rows]),
            "teff": np.full(n, np.nan),
        }
    )
    path = tmp_path / "stars.parquet"
    frame.to_parquet(path, row_group_size=128)
    parts = list(parquet_parts(path, rows_per_part=300, column_map={"source_id": "GAIA_ID"}))
    assert [len(p.load()) for p in parts] == [300, 300, 100]
    out = tmp_path / "out"
    summary = run_catalogue_parts(parts, out, QUICK, tiny_setup, tiny_model_path, progress=False)
    assert summary["stars"] == n and summary["parts"] == 3
    table = pd.read_csv(out / "catalogue.csv")
    assert table["source_id"].tolist() == frame["GAIA_ID"].tolist()
    assert len(list((out / "parts" / "rows_000000000000" / "chunks").glob("chunk_*.csv"))) == 3


def test_streamed_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="no Gaia XP_CONTINUOUS files"):
        xp_files(tmp_path)
    with pytest.raises(DataError, match="no such Parquet table"):
        parquet_parts(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read .* as a Parquet table"):
        parquet_parts(bad)
    pd.DataFrame({"source_id": [1.5e18], "teff": [5000.0]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(DataError, match="floating-point"):
        next(parquet_parts(tmp_path / "f.parquet"))
    with pytest.raises(DataError, match="has no column"):
        parquet_parts(tmp_path / "f.parquet", column_map={"source_id": "ID"})
