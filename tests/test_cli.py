import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from bayesfm.cli import main
from bayesfm.sources.examples import example_stars_path


def test_data_command_reports_counts(capsys, example_stars):
    assert main(["data", "--library", str(example_stars_path())]) == 0
    out = capsys.readouterr().out
    assert f"unique stars kept:  {len(example_stars.tokens)}" in out
    assert "test" in out and "missing fraction" in out


def test_cli_error_is_a_message_not_a_traceback(capsys, tmp_path):
    assert main(["data", "--library", str(tmp_path / "absent.fits")]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_netcdf_summary_and_plots(capsys, tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--n-stars", "1", "--warmup", "40", "--samples", "40", "--max-samples", "40"]
    args += ["--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "teff" in printed and "reference" in printed
    assert re.search(r"inside the posterior's 95% interval .*: \d of 5", printed)
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


FAST_NUTS = ["--warmup", "30", "--samples", "30", "--max-samples", "30", "--no-plots"]


def _summary_sources(out):
    return sorted(pd.read_csv(out / "summary.csv")["source_id"].unique().tolist())


@pytest.mark.slow
def test_fit_resume_is_atomic_and_redoes_a_damaged_star(capsys, tmp_path):
    out = tmp_path / "fit"
    args = ["fit", "--rows", "0", "1", *FAST_NUTS, "--out", str(out)]
    assert main(args) == 0
    first, second = _summary_sources(out)
    # killed after a star's summary rows but before its netCDF: the rerun fits it once
    (out / f"{second}.nc").unlink()
    # an earlier run left a truncated netCDF: the rerun detects and redoes it
    (out / f"{first}.nc").write_bytes((out / f"{first}.nc").read_bytes()[:200])
    capsys.readouterr()
    assert main(args) == 0
    closing = r"2 fitted \(\d flagged\), 0 skipped \(skipped.csv\), 0 already done"
    assert re.search(closing, capsys.readouterr().out)
    assert _summary_sources(out) == [first, second]
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 5  # header + five labels per star, no duplicates
    summary = pd.read_csv(out / "summary.csv")
    assert summary["fit_p"].between(0, 1).all() and summary["trusted"].dtype == bool
    assert main(args) == 0
    assert (
        "0 fitted (0 flagged), 0 skipped (skipped.csv), 2 already done" in capsys.readouterr().out
    )


@pytest.mark.slow
def test_fit_refuses_a_rerun_with_other_settings_naming_them(capsys, tmp_path):
    out = tmp_path / "fit"
    assert main(["fit", "--rows", "0", *FAST_NUTS, "--out", str(out)]) == 0
    other = ["fit", "--rows", "0", *FAST_NUTS, "--seed", "3", "--out", str(out)]
    assert main(other) == 2
    assert "seed: 0 there, 3 now" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_skips_a_star_it_cannot_fit_and_goes_on(capsys, tmp_path):
    table = tmp_path / "stars.csv"
    table.write_text(
        "source_id,teff,teff_err\n"  # a star with no observable token at all
        "1392245298613681536,5000,50\n"
    )
    args = ["fit", "--table", str(table), "--rows", "0", *FAST_NUTS, "--out", str(tmp_path / "f")]
    assert main(args) == 1
    printed = capsys.readouterr()
    assert "skipped (" in printed.out and "0 fitted (0 flagged), 1 skipped" in printed.out
    assert "1392245298613681536" in (tmp_path / "f" / "skipped.csv").read_text()
    assert "no star was fitted" in printed.err


def test_an_empty_table_is_an_error_exit(capsys, tmp_path):
    table = tmp_path / "empty.csv"
    table.write_text("source_id,teff,teff_err\n")
    assert main(["fit", "--table", str(table), "--out", str(tmp_path / "f")]) == 2
    assert "no stars" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--table", "t.csv", "--column-map", "{oops"], "--column-map is not valid JSON"),
        (["fit", "--table", "t.csv", "--column-map", "[1, 2]"], "must be a JSON object"),
        (
            ["catalogue", "--split", "test", "--config", "LIST", "--out", "x"],
            "must be a JSON object",
        ),
        (["catalogue", "--split", "test", "--config", "BAD", "--out", "x"], "is not valid JSON"),
        (["fit", "--out", "FILE"], "is an existing file"),
        (["catalogue", "--split", "test", "--out", "FILE"], "is an existing file"),
        (["catalogue", "--xp", "none*.csv", "--out", "x"], "no Gaia XP_CONTINUOUS files"),
        (["catalogue", "--xp", "XPDIR", "--out", "x", "--limit", "3"], "needs an input read whole"),
    ],
)
def test_cli_mistakes_are_one_line_messages(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("source_id\n1\n")
    (tmp_path / "LIST").write_text("[1, 2]")
    (tmp_path / "BAD").write_text("{nope")
    (tmp_path / "FILE").write_text("")
    (tmp_path / "XPDIR").mkdir()
    (tmp_path / "XPDIR" / "a.csv").write_text("")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--chains", "0"],
        ["fit", "--samples", "0"],
        ["fit", "--warmup", "-1"],
        ["fit", "--n-stars", "x"],
        ["catalogue", "--split", "test", "--out", "x", "--limit", "0"],
    ],
)
def test_out_of_range_arguments_are_refused_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "must be >=" in err or "not a whole number" in err


def test_reference_inside_95_folds_in_the_references_error():
    from bayesfm.fitting import reference_inside_95

    table = pd.DataFrame(
        {
            "q02_5": [4800.0, 4800.0, 0.0, 0.0],
            "q50": [5000.0, 5000.0, 0.1, 0.1],
            "q97_5": [5200.0, 5200.0, 0.2, 0.2],
            "reference": [5250.0, 5250.0, 0.19, float("nan")],
            "reference_error": [0.0, 100.0, 0.0, 0.01],
        }
    )
    inside = reference_inside_95(table)
    # 250 K above the median: outside 200 K, inside hypot(200, 196) = 280 K
    assert inside.iloc[:3].tolist() == [False, True, True]
    assert pd.isna(inside.iloc[3])


def _cache_folder_in_a_fresh_process(env_value, tmp_path):
    """The folder ``enable_compilation_cache`` picks and whether a compiled program lands in it."""
    script = (
        "import jax, jax.numpy as jnp\n"
        "from bayesfm.common.compile_cache import enable_compilation_cache\n"
        "from bayesfm.common.stored_programs import stored_jit\n"
        "folder = enable_compilation_cache()\n"
        "if folder is not None:\n"
        "    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
        "    jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()\n"
        "stored_jit(lambda x: jnp.cos(x) @ x.T, 'probe', 'test')(jnp.ones((8, 8)))\n"
        "print(folder)\n"
    )
    # a fresh user's environment: no cache folder of jax's own, no host devices from an
    # earlier in-process `fit` (several devices keep programs from being stored)
    unset = ("JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {"BAYESFM_COMPILATION_CACHE": env_value, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_compilation_cache_goes_where_asked_and_can_be_turned_off(tmp_path):
    asked = tmp_path / "compiled"
    assert _cache_folder_in_a_fresh_process(str(asked), tmp_path) == str(asked)
    assert any(asked.iterdir()), "no compiled program was stored"
    assert list((asked / "programs").glob("probe-*.jaxexport")), "no traced program was stored"
    default = tmp_path / "xdg" / "bayesfm" / "jax"
    assert _cache_folder_in_a_fresh_process("", tmp_path) == str(default)
    assert any(default.iterdir())
    stored = sorted(tmp_path.rglob("*.jaxexport"))
    assert _cache_folder_in_a_fresh_process("off", tmp_path) == "None"
    assert sorted(tmp_path.rglob("*.jaxexport")) == stored, "off still stored a traced program"
