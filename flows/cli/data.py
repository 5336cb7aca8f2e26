"""``milmer synth`` and ``milmer inspect``: a DEAP folder written, and a DEAP folder checked."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

import flows.cli.render as render
from flows.cli.errors import fail, one_line

app = typer.Typer()


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the synthetic DEAP dataset into.")],
    subjects: Annotated[int, typer.Option(help="Number of subjects (s01..sNN).")] = 2,
    trials: Annotated[int, typer.Option(help="Trials per subject (DEAP: 40).")] = 8,
    seconds: Annotated[int, typer.Option(help="Trial length after the 3 s baseline (DEAP: 60).")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 0,
    fps: Annotated[float, typer.Option(help="Video frame rate.")] = 50.0,
    video_start: Annotated[
        str, typer.Option(help="Videos start at the 3 s 'baseline' or at 'playback'.")
    ] = "baseline",
    missing_videos: Annotated[
        Optional[str],
        typer.Option(help="Videos not to write, e.g. 's01_trial03,s02_trial05' (presentation order)."),
    ] = None,
    videos: Annotated[bool, typer.Option(help="Write face videos at all.")] = True,
    with_bdf: Annotated[
        bool, typer.Option("--with-bdf", help="Also write data_original/sNN.bdf (raw 512 Hz BDF).")
    ] = False,
    difficulty: Annotated[
        str,
        typer.Option(help="Generator v2 at easy (default: large, reliable cues for a first run), "
                     "paper or hard (see the README's probe ceilings); v1: the legacy generator "
                     "(whole-frame colour shortcut, no CAR), with a warning."),
    ] = "easy",
    eeg_family: Annotated[
        str,
        typer.Option(help="EEG family: rhythms (default; what the presets were tuned on) or "
                     "contact (held out: per-trial, per-channel contact gains, other effects and "
                     "background; docs/synthetic.md)."),
    ] = "rhythms",
    data_format: Annotated[
        str, typer.Option("--format", help="dat (data_preprocessed_python/sNN.dat) or mat "
                          "(data_preprocessed_matlab/sNN.mat).")
    ] = "dat",
) -> None:
    """Write a synthetic dataset in DEAP's exact layout and file formats, with planted signals."""
    from pydantic import ValidationError

    from pipeline.synth import (
        LegacyGeneratorWarning,
        SynthParams,
        parse_missing_videos,
        write_synthetic_deap,
    )

    try:
        with warnings.catch_warnings(record=True) as legacy:
            warnings.simplefilter("always", LegacyGeneratorWarning)
            params = SynthParams(
                subjects=subjects, trials=trials, seconds=seconds, seed=seed, fps=fps,
                video_start=video_start, videos=videos, bdf=with_bdf, difficulty=difficulty,
                eeg_family=eeg_family, format=data_format,
                missing_videos=parse_missing_videos(missing_videos) if missing_videos else (),
            )
    except (ValidationError, ValueError) as err:
        raise fail(one_line(err)) from None
    for warning in legacy:
        render.err_console.print(f"warning: {warning.message}")
    started = time.perf_counter()
    with render.console.status("writing synthetic DEAP...") as status, warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyGeneratorWarning)  # said above, once
        report = write_synthetic_deap(out=out, params=params, progress=lambda line: status.update(line))
    render.console.print(
        f"wrote {len(report.files)} files, {report.total_bytes / 2**20:,.1f} MiB, to {out} "
        f"in {time.perf_counter() - started:.1f} s "
        f"({subjects} subjects x {trials} trials x {seconds} s, seed {seed}, "
        f"{'generator v1 (legacy)' if difficulty == 'v1' else f'generator v2, {difficulty}'}"
        f"{'' if eeg_family == 'rhythms' else f', EEG family {eeg_family}'})"
    )


@app.command()
def inspect(
    deap_dir: Annotated[Path, typer.Argument(help="DEAP folder (real or synthetic), or a sub-folder of it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report instead of tables.")] = False,
    videos: Annotated[bool, typer.Option(help="Open every video to read fps and frame count.")] = True,
    strict: Annotated[
        bool, typer.Option(help="Exit 1 when any subject is unusable, not only when none is.")
    ] = False,
) -> None:
    """Report what a DEAP folder holds and every problem in it, before a long run.

    Exit 0 when the folder is usable (at least one usable subject and no folder-wide error).
    """
    from pipeline.readers.deap import scan_deap
    from pipeline.errors import DeapInputError

    try:
        scan = scan_deap(deap_dir, check_videos=videos)
    except DeapInputError as err:
        raise fail(str(err)) from None
    unusable = [s.subject for s in scan.subjects if not s.usable]
    ok = scan.usable and not (strict and unusable)
    if as_json:
        report = scan.model_dump(mode="json")
        for subject, info in zip(report["subjects"], scan.subjects):
            subject["usable"] = info.usable
            subject["missing_videos"] = info.missing_videos
        report["usable"] = scan.usable
        report["usable_subjects"] = scan.usable_subjects
        print(json.dumps(report, indent=2))
        raise typer.Exit(0 if ok else 1)
    render.print_scan(scan)
    raise typer.Exit(0 if ok else 1)
