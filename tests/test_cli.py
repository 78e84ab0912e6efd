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
