from bayesfm.cli import main
from bayesfm.examples import example_stars_path


def test_data_command_reports_counts(capsys, example_stars):
    assert main(["data", "--library", str(example_stars_path())]) == 0
    out = capsys.readouterr().out
    assert f"unique stars kept:  {len(example_stars.tokens)}" in out
    assert "test" in out and "missing fraction" in out


def test_cli_error_is_a_message_not_a_traceback(capsys, tmp_path):
    assert main(["data", "--library", str(tmp_path / "absent.fits")]) == 2
    assert "error" in capsys.readouterr().err


def test_demo_writes_netcdf_summary_and_plots(capsys, tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--n-stars", "1", "--warmup", "40", "--samples", "40", "--max-samples", "40"]
    args += ["--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "teff" in printed and "reference" in printed
    files = sorted(p.name for p in out.iterdir())
    assert "summary.csv" in files
    assert [f for f in files if f.endswith(".nc")]
    assert len([f for f in files if f.endswith(".png")]) == 3
    # a rerun resumes: the finished star is not fitted again
    assert main(args) == 0
    assert "Gaia DR3" not in capsys.readouterr().out


def test_fit_rejects_rows_out_of_range(capsys, tmp_path):
    assert main(["fit", "--rows", "99", "--out", str(tmp_path)]) == 2
    assert "out of range" in capsys.readouterr().err
