"""The catalogue's overview figure: counts over every star, a bounded random subset drawn
from every part of the file, and reference panels only where references exist."""

import numpy as np
import pandas as pd
import pytest

from bayesfm import catalogue_figure
from bayesfm.catalogue_figure import plot_catalogue
from bayesfm.common.errors import DataError


def _catalogue(n: int, references: bool, rng) -> pd.DataFrame:
    path = rng.choice(["importance", "nuts", "amortized"], size=n, p=[0.8, 0.05, 0.15])
    table = pd.DataFrame(
        {
            "source_id": np.arange(n),
            "path": path,
            "ok": path != "amortized",
            "trusted": (path != "amortized") & (rng.random(n) < 0.9),
            "teff_median": rng.uniform(3500, 7000, n),
            "logg_median": rng.uniform(0.5, 5.0, n),
            "fe_h_median": rng.normal(-0.2, 0.3, n),
        }
    )
    for name, sd in (("teff", 80.0), ("logg", 0.2), ("fe_h", 0.1)):
        table[f"{name}_sd"] = sd
        if references:
            table[f"{name}_ref"] = table[f"{name}_median"] + rng.normal(0, sd, n)
            table[f"{name}_ref_err"] = 0.1 * sd
    return table


def test_counts_cover_every_star_and_the_subset_is_drawn_from_every_part(
    tmp_path, monkeypatch, rng
):
    monkeypatch.setattr(catalogue_figure, "_ROWS_PER_READ", 64)  # 8 parts
    table = _catalogue(500, references=True, rng=rng)
    table.to_csv(tmp_path / "catalogue.csv", index=False)
    shown = plot_catalogue(tmp_path / "catalogue.csv", tmp_path / "catalogue.png", most_shown=100)
    assert shown["stars"] == 500 and shown["shown"] == 100
    assert shown["paths"] == table["path"].value_counts().to_dict()
    assert shown["passed"] == table["ok"].sum() and shown["trusted"] == table["trusted"].sum()
    assert shown["compared"] == ["teff", "logg", "fe_h"]
    assert (tmp_path / "catalogue.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    subset, _ = catalogue_figure._subset(tmp_path / "catalogue.csv", 100, seed=0)
    again, _ = catalogue_figure._subset(tmp_path / "catalogue.csv", 100, seed=0)
    pd.testing.assert_frame_equal(subset, again)
    rows = table.reset_index().merge(subset[["teff_median"]], on="teff_median")["index"]
    assert len(rows) == 100 and len(set(rows // 64)) == 8  # every part contributes


def test_without_references_only_the_kiel_diagram(tmp_path, rng):
    _catalogue(40, references=False, rng=rng).to_csv(tmp_path / "c.csv", index=False)
    shown = plot_catalogue(tmp_path / "c.csv", tmp_path / "c.png")
    assert shown["compared"] == [] and shown["shown"] == 40
    assert (tmp_path / "c.png").stat().st_size > 0


def test_an_empty_catalogue_is_refused(tmp_path, rng):
    _catalogue(0, references=False, rng=rng).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match="holds no stars"):
        plot_catalogue(tmp_path / "c.csv", tmp_path / "c.png")
