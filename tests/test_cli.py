"""The `milmer` command line as a user meets it: help everywhere, inspect's report and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from pipeline.readers import deap_format as fmt

runner = CliRunner()

COMMANDS = [[], ["synth"], ["inspect"], ["preprocess"], ["store"], ["store", "info"], ["store", "verify"],
            ["store", "faces"]]
"""The commands the help test covered when it was a list: the walk below must still find them."""


def registered_commands(command: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every command and group of the app (typer's click objects), by its words after ``milmer``
    (the root is ``()``)."""
    found = {path: command}
    for name, sub in getattr(command, "commands", {}).items():
        found |= registered_commands(sub, (*path, name))
    return found


ALL_COMMANDS = registered_commands(typer.main.get_command(app))
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}  # option names stay whole in the help's tables


def test_the_help_test_walks_every_registered_command() -> None:
    assert {tuple(c) for c in COMMANDS} <= set(ALL_COMMANDS)
    assert {("train",), ("ablate",), ("report",), ("serve",)} <= set(ALL_COMMANDS)


@pytest.mark.parametrize("command", sorted(ALL_COMMANDS), ids=lambda c: " ".join(c) or "milmer")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Usage: milmer" in result.output
    assert f"Usage: {' '.join(('milmer', *command))}" in " ".join(result.output.split())
    for param in ALL_COMMANDS[command].params:
        if param.param_type_name == "option" and not param.hidden:
            for flag in (*param.opts, *param.secondary_opts):
                assert flag in result.output, f"milmer {' '.join(command)} --help does not show {flag}"
        elif param.param_type_name == "argument":
            assert param.name in result.output.lower(), (command, param.name)
    for name in getattr(ALL_COMMANDS[command], "commands", {}):
        assert name in result.output, f"milmer {' '.join(command)} --help does not list {name}"


DIFFERENT_ON_PURPOSE = {"store", "out", "config", "progress", "experiment"}
"""Options of both `train` and `ablate` that mean different things there (one store or several;
a run or a study folder; a run's or every row's config; one progress bar or one per row; the
MLflow experiment of one run or the study's own, named after its folder)."""


def test_train_and_ablate_describe_the_options_they_share_alike() -> None:
    train = {p.name: p for p in ALL_COMMANDS[("train",)].params}
    ablate = {p.name: p for p in ALL_COMMANDS[("ablate",)].params}
    shared = sorted(set(train) & set(ablate) - DIFFERENT_ON_PURPOSE)
    assert {"labels", "protocol", "epochs", "folds", "device", "seed", "subjects"} <= set(shared)
    for name in shared:
        assert (train[name].help, train[name].default) == (ablate[name].help, ablate[name].default), name


def test_importing_the_cli_changes_no_environment_and_a_command_sets_prefect_defaults(tmp_path: Path) -> None:
    """The Prefect defaults are applied when a command runs (before it can import Prefect), not when
    `flows.cli` is imported; a value the user set wins."""
    home = tmp_path / "prefect-home"
    script = f"""if True:
        import json, os, sys
        before = dict(os.environ)
        import flows.cli
        unchanged = dict(os.environ) == before and not os.path.exists({str(home)!r})
        try:
            flows.cli.app(["inspect", {str(tmp_path / "no-such-folder")!r}], prog_name="milmer")
        except SystemExit:
            pass
        print(json.dumps([unchanged, os.path.isdir({str(home)!r}),
                          os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"),
                          os.environ.get("PREFECT_SERVER_ANALYTICS_ENABLED")]))
    """
    env = {k: v for k, v in os.environ.items() if k not in {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "PREFECT_SERVER_ANALYTICS_ENABLED"}}
    env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [True, True, "180", "true"]


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


def test_a_config_file_that_is_not_json_is_refused_naming_the_file(small_deap: Path, tmp_path: Path) -> None:
    bad = tmp_path / "settings.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["preprocess", "--deap", str(small_deap), "--store",
                                 str(tmp_path / "store.zarr"), "--config", str(bad)])
    assert result.exit_code == 2
    assert f"--config {bad}: not a readable JSON file" in result.output
    bad.write_text("[1, 2]")
    listed = runner.invoke(app, ["preprocess", "--deap", str(small_deap), "--store",
                                 str(tmp_path / "store.zarr"), "--config", str(bad)])
    assert listed.exit_code == 2 and "expected a JSON object" in listed.output
    assert not (tmp_path / "store.zarr").exists()


def test_flags_and_the_config_file_meet_in_one_validated_config(small_deap: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.preprocess
    from flows.summary import RunSummary

    seen = []
    monkeypatch.setattr(flows.preprocess, "run_flow", lambda cfg, **_: seen.append(cfg) or RunSummary(outcomes=[]))
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"eeg": {"h_freq": 40.0, "ica_seed": 3}, "workers": 3}))
    result = runner.invoke(app, ["preprocess", "--deap", str(small_deap), "--store", str(tmp_path / "s.zarr"),
                                 "--config", str(settings), "--l-freq", "2", "--ica-seed", "5",
                                 "--stages", "ingest,eeg", "--subjects", "s02", "--force"])
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert (cfg.eeg.l_freq, cfg.eeg.h_freq, cfg.eeg.ica_seed) == (2.0, 40.0, 5)  # flags win
    assert (cfg.workers, cfg.subjects, cfg.force) == (3, [2], True)
    assert [s.value for s in cfg.stages] == ["ingest", "eeg"]


def test_the_terminal_summary_and_the_markdown_render_one_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    import flows.cli.render
    from flows.summary import RunSummary
    from store_schema.run.runner import StageOutcome

    summary = RunSummary(outcomes=[
        StageOutcome(subject=2, stage="ingest", status="computed", seconds=1.25),
        StageOutcome(subject=2, stage="faces", status="computed", seconds=3.0,
                     warnings=["s02_trial01.avi: truncated"]),
        StageOutcome(subject=1, stage="ingest", status="failed", seconds=0.5, error="s01.dat: empty file"),
        StageOutcome(subject=1, stage="faces", status="skipped", seconds=0.0, waited_seconds=2.0,
                     waited_for=["subjects/s01/faces held by another run"]),
    ])
    out, err = Console(record=True, width=200), Console(record=True, width=200)
    monkeypatch.setattr(flows.cli.render, "console", out)
    monkeypatch.setattr(flows.cli.render, "err_console", err)
    flows.cli.render.print_summary(summary)
    terminal, notes = out.export_text(), err.export_text().splitlines()
    markdown = summary.markdown()
    assert markdown.splitlines()[2:4] == ["| s01 | failed 0.5s | skipped 0.0s |",
                                          "| s02 | computed 1.2s | computed 3.0s |"]
    assert terminal.index("s01") < terminal.index("s02") and "failed 0.5s" in terminal
    assert "1 failed" in markdown and terminal.strip().endswith("2 computed, 1 skipped, 1 failed")
    assert notes == ["failed s01 ingest: s01.dat: empty file",
                     "warning s02 faces: s02_trial01.avi: truncated",
                     "note s01 faces: waited 2.0 s for subjects/s01/faces held by another run, then skipped"]
    for note in summary.notes():  # one list of notes, rendered twice
        assert f"{note.kind} {note.where}: {note.text}" in notes
        assert f"- **{note.where}** {note.kind}: {note.text}" in markdown

def test_python_m_flows_is_the_cli_and_serving_does_not_import_it() -> None:
    result = subprocess.run([sys.executable, "-m", "flows", "store", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "Usage: milmer store" in result.stdout, result.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys, flows.serve; print('flows.cli' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "False", probe.stderr


def test_synth_defaults_to_v2_easy_and_warns_once_for_the_legacy_v1(tmp_path: Path) -> None:
    args = ["--subjects", "1", "--trials", "1", "--seconds", "3", "--no-videos"]
    default = runner.invoke(app, ["synth", str(tmp_path / "a"), *args])
    assert default.exit_code == 0 and "generator v2, easy" in default.output, default.output
    legacy = runner.invoke(app, ["synth", str(tmp_path / "b"), *args, "--difficulty", "v1"])
    assert legacy.exit_code == 0 and "generator v1 (legacy)" in legacy.output, legacy.output
    assert legacy.output.count("colour shortcut") == 1
    bad = runner.invoke(app, ["synth", str(tmp_path / "c"), *args, "--difficulty", "v1",
                              "--eeg-family", "contact"])
    assert bad.exit_code != 0 and "needs generator v2" in bad.output


def test_synth_writes_generator_v2_as_matlab_files_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "deap"
    result = runner.invoke(app, ["synth", str(out), "--subjects", "1", "--trials", "2", "--seconds", "3",
                                 "--fps", "5", "--difficulty", "paper", "--format", "mat"])
    assert result.exit_code == 0, result.output
    assert "generator v2, paper" in result.output
    assert (out / "data_preprocessed_matlab" / "s01.mat").is_file()
    assert not (out / "data_preprocessed_python").exists()
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert manifest["params"]["difficulty"] == "paper" and manifest["params"]["format"] == "mat"
    scan = runner.invoke(app, ["inspect", str(out), "--json"])
    assert scan.exit_code == 0 and json.loads(scan.output)["subjects"][0]["preprocessed_format"] == "mat"


def test_tokens_precision_is_a_setting_of_the_flags_and_of_a_config_file(
        small_deap: Path, tmp_path: Path) -> None:
    """``--amp`` and ``tokens.amp`` in ``--config`` reach the tokens stage's settings; the
    top-level ``weights``/``device`` shorthands of earlier configs still do, and a flag wins."""
    from flows.cli.preprocess import config_from_flags

    store = str(tmp_path / "s.zarr")
    flags = config_from_flags(None, deap=str(small_deap), store=store, weights="random:2", amp="off",
                              device="cpu")
    assert (flags.tokens.weights, flags.tokens.amp, flags.tokens.device) == ("random:2", "off", "cpu")
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"tokens": {"weights": "random", "amp": "bf16"}, "device": "cpu"}))
    from_file = config_from_flags(file, deap=str(small_deap), store=store)
    assert (from_file.tokens.weights, from_file.tokens.amp, from_file.tokens.device) == (
        "random", "bf16", "cpu")
    assert config_from_flags(file, deap=str(small_deap), store=store, weights="random:7").tokens.weights == "random:7"
    with pytest.raises(typer.Exit):
        config_from_flags(None, deap=str(small_deap), store=store, weights="random", amp="fast")
