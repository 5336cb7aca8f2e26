"""The `milmer` command line as a user meets it: help everywhere, inspect's report and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline import deap_format as fmt

runner = CliRunner()

COMMANDS = [[], ["synth"], ["inspect"], ["preprocess"], ["store"], ["store", "info"], ["store", "verify"],
            ["store", "faces"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "milmer")
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: milmer" in result.output


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("milmer")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "synth" in result.stdout and "inspect" in result.stdout


def test_inspect_json_reports_subjects_and_missing_videos(small_deap: Path) -> None:
    (small_deap / fmt.VIDEO_DIR / "s01" / "s01_trial02.avi").unlink()
    result = runner.invoke(app, ["inspect", str(small_deap), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["usable"] is True and report["usable_subjects"] == [1, 2]
    s01 = report["subjects"][0]
    assert (s01["n_trials"], s01["n_channels"], s01["sfreq"]) == (4, 40, 128)
    assert s01["missing_videos"] == ["s01_trial02.avi"]
    assert any("s01_trial02.avi" in p["message"] for p in s01["problems"])


def test_inspect_exit_code_follows_usability(small_deap: Path, tmp_path: Path) -> None:
    (small_deap / fmt.PREPROCESSED_DIR / "s02.dat").write_bytes(b"")
    lenient = runner.invoke(app, ["inspect", str(small_deap)])
    assert lenient.exit_code == 0
    assert "s02.dat: empty file" in lenient.output
    strict = runner.invoke(app, ["inspect", str(small_deap), "--strict"])
    assert strict.exit_code == 1
    empty = runner.invoke(app, ["inspect", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "no such file or directory" in empty.output


def test_synth_rejects_bad_parameters_with_the_field_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", str(tmp_path / "x"), "--trials", "0"])
    assert result.exit_code == 2
    assert "trials" in result.output
    bad_missing = runner.invoke(app, ["synth", str(tmp_path / "x"), "--missing-videos", "s09_trial01"])
    assert bad_missing.exit_code == 2 and "s09" in bad_missing.output
    assert not (tmp_path / "x").exists()


def test_preprocess_refuses_a_folder_without_dat_files_in_one_line(small_deap: Path, tmp_path: Path) -> None:
    for dat in (small_deap / fmt.PREPROCESSED_DIR).glob("*.dat"):
        dat.unlink()
    result = runner.invoke(app, ["preprocess", "--deap", str(small_deap), "--store",
                                 str(tmp_path / "store.zarr"), "--stages", "ingest"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {small_deap}: no sNN.dat files found: nothing to preprocess"]
    assert not (tmp_path / "store.zarr").exists()
