"""The ``milmer`` command line. Each command is a thin shell over a pipeline, store or train call.

Heavy libraries are imported inside the commands so that ``milmer --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from flows.config import PreprocessConfig

# Prefect's temporary API migrates its database on first use; on a busy 2-core machine that can
# take longer than Prefect's default 20 s. No telemetry from an offline research machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if os.environ.get("PREFECT_HOME"):
    # Prefect's SQLite cannot open a database in a folder that does not exist yet.
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)

app = typer.Typer(
    name="milmer",
    help="DEAP preprocessing pipeline, Zarr feature store and Milmer training heads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)  # problem lines stay one line, greppable
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


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
        Optional[str],
        typer.Option(help="Generator v2 at easy, paper or hard (see the README's probe ceilings); "
                     "unset: generator v1."),
    ] = None,
    data_format: Annotated[
        str, typer.Option("--format", help="dat (data_preprocessed_python/sNN.dat) or mat "
                          "(data_preprocessed_matlab/sNN.mat).")
    ] = "dat",
) -> None:
    """Write a synthetic dataset in DEAP's exact layout and file formats, with planted signals."""
    from pydantic import ValidationError

    from pipeline.synth import SynthParams, parse_missing_videos, write_synthetic_deap

    try:
        params = SynthParams(
            subjects=subjects, trials=trials, seconds=seconds, seed=seed, fps=fps,
            video_start=video_start, videos=videos, bdf=with_bdf, difficulty=difficulty,
            format=data_format, missing_videos=parse_missing_videos(missing_videos) if missing_videos else (),
        )
    except (ValidationError, ValueError) as err:
        raise _fail(_one_line(err)) from None
    started = time.perf_counter()
    with console.status("writing synthetic DEAP...") as status:
        report = write_synthetic_deap(out=out, params=params, progress=lambda line: status.update(line))
    console.print(
        f"wrote {len(report.files)} files, {report.total_bytes / 2**20:,.1f} MiB, to {out} "
        f"in {time.perf_counter() - started:.1f} s "
        f"({subjects} subjects x {trials} trials x {seconds} s, seed {seed}, "
        f"{'generator v1' if difficulty is None else f'generator v2, {difficulty}'})"
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
        raise _fail(str(err)) from None
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
    _print_scan(scan)
    raise typer.Exit(0 if ok else 1)


def _print_scan(scan) -> None:  # noqa: ANN001 - pipeline.readers.deap.DeapScan, imported lazily
    layout = scan.layout
    console.print(f"[bold]DEAP folder[/] {layout.root}")
    for label, path in (("preprocessed", layout.preprocessed_dir), ("ratings", layout.ratings_csv),
                        ("face videos", layout.video_dir), ("raw BDF", layout.original_dir)):
        console.print(f"  {label:<13} {path if path else '[dim]not found[/]'}", highlight=False)
    table = Table(title="Subjects")
    for column in ("subject", "trials", "channels", "samples", "Hz", "videos", "usable"):
        table.add_column(column, justify="right" if column != "usable" else "center")
    for s in scan.subjects:
        n_trials = len(s.trials) or s.n_trials
        videos = f"{s.videos_found}/{n_trials}" if n_trials else "-"
        table.add_row(
            f"s{s.subject:02d}", str(s.n_trials or "-"), str(s.n_channels or "-"),
            str(s.n_samples or "-"), str(s.sfreq), videos,
            "[green]yes[/]" if s.usable else "[red]no[/]",
        )
    console.print(table)
    problems = scan.all_problems()
    if not problems:
        console.print("[green]No problems found.[/]")
    for p in problems:
        colour = "red" if p.severity == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(p))}[/]", highlight=False)
    verdict = "[green]usable[/]" if scan.usable else "[red]not usable[/]"
    console.print(f"{len(scan.usable_subjects)} of {len(scan.subjects)} subjects usable; folder {verdict}")


def _parse_ints(text: str | None, what: str) -> list[int] | None:
    if text is None or text.strip().lower() in {"", "all"}:
        return None
    try:
        return [int(part.strip().lstrip("sS")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise _fail(f"--{what}: expected comma-separated numbers like 1,2,5, got {text!r}") from None


def _parse_stages(text: str | None) -> list[str] | None:
    """``ingest,eeg`` as a list; None (every stage) for 'all' or nothing."""
    if text is None or text.strip().lower() in {"", "all"}:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


SECTION_OF_FLAG = {"source": "ingest", "l_freq": "eeg", "h_freq": "eeg", "ica_seed": "eeg",
                   "window_s": "segment", "stride_s": "segment"}
"""Flags that set a field of one stage's parameters (``--l-freq`` is ``eeg.l_freq``)."""


def _config_from_flags(config_file: Path | None, **flags: object) -> PreprocessConfig:
    """The fields of ``--config`` (a JSON file), overridden by every flag given (None: not given),
    validated as one :class:`~flows.config.PreprocessConfig`; a bad file or field exits 2 naming it."""
    from pydantic import ValidationError

    from flows.config import PreprocessConfig

    fields: dict = {}
    if config_file is not None:
        try:
            fields = json.loads(config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _fail(f"--config {config_file}: not a readable JSON file ({err})") from None
        if not isinstance(fields, dict):
            raise _fail(f"--config {config_file}: expected a JSON object of PreprocessConfig fields, "
                        f"got {type(fields).__name__}")
    for name, value in flags.items():
        if value is None:
            continue
        if name in SECTION_OF_FLAG:
            fields.setdefault(SECTION_OF_FLAG[name], {})[name] = value
        else:
            fields[name] = value
    try:
        return PreprocessConfig.model_validate(fields)
    except ValidationError as err:
        raise _fail(_one_line(err)) from None


@app.command()
def preprocess(
    deap: Annotated[Path, typer.Option(help="DEAP folder (real or synthetic).")],
    store: Annotated[str, typer.Option(help="Feature store: a folder or an fsspec URL.")],
    subjects: Annotated[Optional[str], typer.Option(help="Subjects, e.g. 1,2,5 (default: all found).")] = None,
    stages: Annotated[
        str, typer.Option(help="'all' or a comma-separated list of ingest,eeg,segment,faces,tokens.")
    ] = "all",
    weights: Annotated[
        Optional[str],
        typer.Option(help="Swin weights for tokens: a timm .pth/.safetensors file, a Hugging Face Swin "
                     "folder, or 'random'."),
    ] = None,
    device: Annotated[Optional[str], typer.Option(help="Tokens device: auto (CUDA when present), cpu, cuda.")] = None,
    l_freq: Annotated[Optional[float], typer.Option(help="Band-pass low edge, Hz (default 1).")] = None,
    h_freq: Annotated[Optional[float], typer.Option(help="Band-pass high edge, Hz (default 50).")] = None,
    ica_seed: Annotated[Optional[int], typer.Option(help="FastICA random seed (default 0).")] = None,
    window_s: Annotated[Optional[float], typer.Option(help="Segment window, s (default 3).")] = None,
    stride_s: Annotated[Optional[float], typer.Option(help="Segment stride, s (default 3).")] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="JSON file with any PreprocessConfig fields; flags win.")
    ] = None,
    content_hash: Annotated[bool, typer.Option(help="Fingerprint input files by content (slower).")] = False,
    force: Annotated[bool, typer.Option(help="Recompute even when fingerprints match.")] = False,
    runner: Annotated[
        Optional[str], typer.Option(help="Parallel subject-stages in 'threads' (default) or 'processes'.")
    ] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel subject-stages (default: CPU cores).")] = None,
    dask_address: Annotated[
        Optional[str], typer.Option(help="Run the tasks on an existing Dask cluster (tcp://HOST:PORT).")
    ] = None,
    dask_gpu_resource: Annotated[
        Optional[str],
        typer.Option(help="With --dask-address: the worker resource tokens need, e.g. GPU (workers "
                     "started with --resources GPU=1)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Only say what would be recomputed and why (starts nothing, "
                           "writes nothing).")
    ] = False,
    source: Annotated[
        Optional[str],
        typer.Option(help="EEG source: 'preprocessed' (sNN.dat, default) or 'original' (raw sNN.bdf)."),
    ] = None,
    report: Annotated[
        Optional[Path],
        typer.Option(help="After the run, write QC reports (as `milmer report`) into this folder "
                     "and link them as a Prefect artifact."),
    ] = None,
) -> None:
    """Build or update the feature store: only subject-stages whose inputs or settings changed run.

    Runs the `preprocess-deap` Prefect flow in this process (with Prefect's temporary local API
    unless PREFECT_API_URL points at a server). Prints a subject x stage summary (computed /
    skipped / failed, seconds). Exit 0 only if every requested subject-stage is complete.
    """
    from flows.plan import summary_if_up_to_date
    from store_schema.errors import MilmerError

    cfg = _config_from_flags(
        config, deap=str(deap), store=store, subjects=_parse_ints(subjects, "subjects"),
        stages=_parse_stages(stages), content_hash=content_hash or None, force=force or None,
        runner=runner, workers=workers, dask_address=dask_address,
        dask_gpu_resource=dask_gpu_resource, weights=weights, device=device, source=source,
        l_freq=l_freq, h_freq=h_freq, ica_seed=ica_seed, window_s=window_s, stride_s=stride_s,
        report=None if report is None else str(report))
    if plan:
        _print_plan(cfg, as_json=as_json)
        raise typer.Exit(0)
    try:
        # Checked here, before Prefect is imported; with --report the flow checks (and reports).
        summary = summary_if_up_to_date(cfg) if cfg.report is None else None
        if summary is None:
            from flows.preprocess import run_flow  # Prefect: imported only when a run is needed

            summary = run_flow(cfg, skip_when_up_to_date=cfg.report is not None)
    except MilmerError as err:
        raise _fail(str(err)) from None
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        _print_summary(summary, random_weights=str(cfg.tokens.weights).startswith("random"))
    raise typer.Exit(0 if summary.ok else 1)


STATUS_COLOURS = {"computed": "green", "skipped": "dim", "failed": "red"}
NOTE_COLOURS = {"failed": "red", "warning": "yellow", "note": "cyan"}


PLAN_COLOURS = {"up to date": "dim", "would compute": "green", "cannot run": "red"}


def _print_plan(cfg, *, as_json: bool) -> None:  # noqa: ANN001 - PreprocessConfig
    """What the run would recompute and why: a table (or JSON) of every subject-stage."""
    from flows.plan import plan_run
    from store_schema.errors import MilmerError

    try:
        found = plan_run(cfg)
    except MilmerError as err:
        raise _fail(str(err)) from None
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    table = Table(title="preprocess plan")
    for column in ("subject", "stage", "action", "why"):
        table.add_column(column)
    for e in found.entries:
        table.add_row(f"s{e.subject:02d}", e.stage.value,
                      f"[{PLAN_COLOURS[e.action]}]{e.action}[/]", escape(e.reason))
    console.print(table)
    console.print(", ".join(f"{n} {k}" for k, n in found.counts().items()))


def _print_summary(summary, *, random_weights: bool = False) -> None:  # noqa: ANN001 - RunSummary
    """The run's table on stdout, its notes (failures, warnings, lock waits) on stderr."""
    from flows.summary import cell_text

    if summary.note:
        console.print(summary.note)
    table = Table(title="preprocess summary")
    table.add_column("subject")
    for stage in summary.stages():
        table.add_column(stage.value)
    for row in summary.table():
        table.add_row(row.label, *("" if o is None else
                                   f"[{STATUS_COLOURS[o.status]}]{escape(cell_text(o))}[/]"
                                   for o in row.cells))
    console.print(table)
    for note in summary.notes():
        err_console.print(f"[{NOTE_COLOURS[note.kind]}]{note.kind}[/] {note.where}: {escape(note.text)}",
                          highlight=False)
    if random_weights and any(o.stage.value == "tokens" and o.status == "computed"
                              for o in summary.outcomes):
        err_console.print("[yellow]notice[/] tokens were computed with RANDOM Swin weights (recorded "
                          "in the store); give --weights PATH for real features", highlight=False)
    console.print(summary.counts_line())
    if summary.reports:
        console.print(f"QC reports: {len(summary.reports) - 1} subject page(s), index "
                      f"{escape(summary.reports[-1])}", highlight=False)
    if summary.report_error:
        err_console.print(f"[yellow]warning[/] QC reports not written: {escape(summary.report_error)}",
                          highlight=False)


@app.command()
def serve(
    deap: Annotated[Optional[Path], typer.Option(help="Default DEAP folder of the deployment's runs.")] = None,
    store: Annotated[Optional[str], typer.Option(help="Default feature store of the deployment's runs.")] = None,
    runner: Annotated[Optional[str], typer.Option(help="'processes' or 'threads' for subject-stages.")] = None,
    dask_address: Annotated[
        Optional[str], typer.Option(help="Run the tasks on an existing Dask cluster (tcp://HOST:PORT).")
    ] = None,
    weights: Annotated[Optional[str], typer.Option(help="Default Swin weights (path or 'random').")] = None,
    dask_gpu_resource: Annotated[
        Optional[str], typer.Option(help="Default Dask worker resource for tokens, e.g. GPU.")
    ] = None,
    stages: Annotated[Optional[str], typer.Option(help="Default stages, comma-separated.")] = None,
) -> None:
    """Serve the deployment `preprocess-deap/default` to the Prefect server at PREFECT_API_URL.

    Then `prefect deployment run preprocess-deap/default` runs it, with these defaults or with
    `--params '{"config": {"deap": "...", "store": "..."}}'`. Restart after upgrading the code.
    """
    from flows.serve import serve as serve_deployment

    config = None
    if deap is not None or store is not None:
        if deap is None or store is None:
            raise _fail("give both --deap and --store as defaults, or neither")
        config = _config_from_flags(
            None, deap=str(deap), store=store, runner=runner, dask_address=dask_address,
            dask_gpu_resource=dask_gpu_resource, weights=weights, stages=_parse_stages(stages))
    serve_deployment(config)


store_app = typer.Typer(help="Look into a feature store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def _open_store(url: str):  # noqa: ANN202 - store_schema.engine.store.FeatureStore
    from store_schema.errors import StoreError
    from store_schema.engine.store import FeatureStore

    try:
        return FeatureStore.open(url, mode="r")
    except StoreError as err:
        raise _fail(str(err)) from None


@store_app.command("info")
def store_info(
    store: Annotated[str, typer.Argument(help="Feature store folder or URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per subject and stage: committed or not, fingerprint, shapes, bytes on disk."""
    from store_schema.views.info import store_report

    report = store_report(_open_store(store))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"feature store {store}", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in ("subject", "stage", "state", "fingerprint", "main array", "MiB", "s"):
        table.add_column(column, no_wrap=True, justify="right" if column in {"MiB", "s"} else "left")
    for row in report["stages"]:
        main = next(iter(row["arrays"].items()), None)
        table.add_row(
            f"s{row['subject']:02d}", row["stage"], row["state"], (row["fingerprint"] or "-")[:8],
            f"{main[0]} {'x'.join(map(str, main[1]['shape']))}" if main else "-",
            f"{row['bytes'] / 2**20:.1f}",
            f"{row['wall_seconds']:.1f}" if row["wall_seconds"] is not None else "-")
    console.print(table)
    console.print(f"schema version {report['schema_version']}; "
                  f"{report['total_bytes'] / 2**20:.1f} MiB in committed arrays")


@store_app.command("verify")
def store_verify(
    store: Annotated[str, typer.Argument(help="Feature store folder or URL.")],
    quick: Annotated[bool, typer.Option(help="Check chunk presence only; do not decode every chunk.")] = False,
    repair: Annotated[bool, typer.Option(
        "--repair", help="Drop the commit markers of exactly the subject-stages with problems, so "
        "readers stop seeing them and the next `milmer preprocess` recomputes them.")] = False,
) -> None:
    """Check every committed subject-stage; one line per problem (subject, stage, array).

    Checks: arrays present with the schema's shapes and dtypes, every chunk present and readable,
    a commit fingerprint consistent with its recorded inputs, no stale stage.

    Exit 0: nothing wrong. Exit 1: problems found.

    With --repair, exit 1 too when problems were found: they are then uncommitted (the store is
    consistent but incomplete) and the next `milmer preprocess` recomputes exactly them.

    Exit 2: the store cannot be opened, or the repair could not write to it.
    """
    from store_schema.engine.verify import pending_stages, repair_store, verify_store

    opened = _open_store(store)
    problems = verify_store(opened, read_chunks=not quick)
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/]", highlight=False)
    committed = sum(state == "committed" for _, _, state in opened.iter_stages())
    if problems:
        console.print(f"{len(problems)} problem(s) in {committed} committed subject-stages")
    if problems and repair:
        from store_schema.errors import StoreError
        from store_schema.engine.store import FeatureStore

        try:
            writable = FeatureStore.open(store, mode="a")
            repairs = repair_store(writable, problems, read_chunks=not quick)
        except (StoreError, OSError) as err:
            raise _fail(f"repair failed: {err}") from None
        for done in repairs:
            console.print(escape(str(done)), highlight=False)
        console.print(f"{len(repairs)} subject-stage(s) uncommitted; the next `milmer preprocess` "
                      "(same --stages and settings) recomputes them")
    for note in pending_stages(opened):
        console.print(f"[yellow]note[/] {escape(str(note))}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {committed} committed subject-stages verified")


@store_app.command("faces")
def store_faces(
    store: Annotated[str, typer.Argument(help="Feature store folder or URL.")],
    subject: Annotated[int, typer.Option(help="Subject number, e.g. 1.")],
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: faces_sNN.png here).")] = None,
    trial: Annotated[Optional[int], typer.Option(help="Only this trial (Experiment_id).")] = None,
    max_rows: Annotated[int, typer.Option(help="At most this many segments, spread evenly.")] = 40,
) -> None:
    """Contact sheet of a subject's face crops: a row per segment, ten frames each; frames without
    a detection are outlined in red."""
    from pipeline.qc.contact_sheet import contact_sheet, sheet_rows, write_png
    from store_schema.errors import StoreError
    from store_schema.views.face_sheet import read_face_sheet

    try:
        sheet = read_face_sheet(_open_store(store), subject,
                                select=lambda experiment: sheet_rows(experiment, trial=trial,
                                                                     max_rows=max_rows))
    except StoreError as err:
        raise _fail(str(err)) from None
    if not sheet.rows:
        raise _fail(f"{store}: subject {subject} has no segment of Experiment_id {trial}")
    title = (f"s{subject:02d}: {sheet.rows} of {sheet.n_segments} segments; "
             f"{sheet.detected_fraction:.1%} of frames detected; red = not detected")
    image = contact_sheet(crops=sheet.crops, detected=sheet.detected, has_video=sheet.has_video,
                          labels=sheet.labels, title=title)
    path = write_png(out or Path(f"faces_s{subject:02d}.png"), image)
    console.print(f"wrote {path} ({image.shape[1]}x{image.shape[0]} px, {sheet.rows} segments)")


@app.command()
def report(
    store: Annotated[str, typer.Argument(help="Feature store folder or URL.")],
    out: Annotated[Path, typer.Option(help="Folder for sub-NN_report.html pages and index.html.")],
    subjects: Annotated[Optional[str], typer.Option(help="Subjects, e.g. 1,2 (default: all ingested).")] = None,
) -> None:
    """QC reports (MNE Report HTML): per subject, what ICA removed (component topographies,
    properties, EOG scores, EEG around the strongest blink, spectra), the face crops (detection
    per trial, a strip of crops, video alignment), token norms and the stage records."""
    from flows.qc import write_qc_reports
    from store_schema.errors import MilmerError

    try:
        written = write_qc_reports(store, out, subjects=_parse_ints(subjects, "subjects"),
                                   log=lambda line: console.print(escape(line), highlight=False))
    except MilmerError as err:
        raise _fail(str(err)) from None
    console.print(f"wrote {len(written) - 1} subject report(s); open {written[-1]}")


def _one_line(err: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        def line(e: dict) -> str:
            # our validators' own message, without pydantic's "Value error, " prefix
            raised = e.get("ctx", {}).get("error")
            text = str(raised) if isinstance(raised, ValueError) else e["msg"]
            where = ".".join(map(str, e["loc"]))
            return f"{where}: {text}" if where else text

        return "; ".join(line(e) for e in err.errors())
    return str(err)


@app.command()
def train(
    store: Annotated[str, typer.Option(help="Feature store folder or fsspec URL.")],
    out: Annotated[Path, typer.Option(help="Run folder: config.json, checkpoints/, metrics.json, plots.")],
    config: Annotated[Optional[str], typer.Option(
        help="JSON file of TrainConfig fields, or a preset name from train.ablations "
             "(e.g. balance-mlp, mil-amil, eeg-only); flags win.")] = None,
    labels: Annotated[Optional[str], typer.Option(
        help="deap4 (default), deap2-valence, deap2-arousal, deap3-valence, deap3-arousal.")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        help="trial (default: whole trials held out), segment (leaky random split), loso.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold (default 100).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="fusion (default), concat, deepcca, eeg or face.")] = None,
    eeg_tokenizer: Annotated[Optional[str], typer.Option(
        help="raw (the paper's, default), log_power (2 Hz bins, one token per channel), de "
             "(differential entropy in 5 bands) or band_maps (2 Hz bins, one token per band): "
             "spectral ones see random-phase band power.")] = None,
    folds: Annotated[Optional[int], typer.Option(help="k of the trial/segment protocols (default 5).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (default), cpu, cuda, cuda:N.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of folds, init and shuffling (default 0).")] = None,
    subjects: Annotated[Optional[str], typer.Option(help="Subjects to use, e.g. 1,2,5 (default: all).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (default 14).")] = None,
    resume: Annotated[bool, typer.Option(
        help="Continue the run in --out from its checkpoints (settings from its config.json).")] = False,
    progress: Annotated[Optional[bool], typer.Option(
        help="Show a progress bar (default: when the terminal is interactive).")] = None,
) -> None:
    """Train the Milmer heads on cached tokens and evaluate them fold by fold.

    Writes config.json, metrics.json, confusion.png, curves.png and checkpoints to --out.
    """
    from store_schema.errors import MilmerError
    from train.config import resolve_config
    from train.trainer import run_training

    source = config
    if resume and source is None and (out / "config.json").is_file():
        source = str(out / "config.json")
    subject_list = _parse_ints(subjects, "subjects")
    try:
        cfg = resolve_config(
            source, store=store, labels=labels, protocol=protocol, epochs=epochs, folds=folds,
            device=device, seed=seed, subjects=subject_list, batch_size=batch_size,
            model={k: v for k, v in (("kind", model), ("eeg_tokenizer", eeg_tokenizer)) if v}
            or None)
        run_training(cfg, out, resume=resume, progress=progress, console=err_console)
    except MilmerError as err:
        raise _fail(str(err)) from None
    except KeyboardInterrupt:
        raise _fail(f"interrupted; continue with `milmer train --store {store} --out {out} --resume`",
                    code=130) from None


@app.command()
def ablate(
    study: Annotated[str, typer.Argument(help="paper-table4, paper-table5, paper-table6 or tokenizers.")],
    store: Annotated[list[str], typer.Option(help=(
        "Feature store folder or fsspec URL. Repeat to compare token sets (the same data through "
        "different Swin weights): every row runs once per store."))],
    out: Annotated[Path, typer.Option(help="Study folder: study.md, study.png, study.json, rows/.")],
    config: Annotated[Optional[str], typer.Option(
        help="JSON file of TrainConfig fields shared by every row; flags win.")] = None,
    labels: Annotated[Optional[str], typer.Option(help="deap4 (default), deap2-valence, ...")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="trial (default), segment (leaky), loso.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold (default 100).")] = None,
    folds: Annotated[Optional[int], typer.Option(help="k of the trial/segment protocols (default 5).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (default), cpu, cuda, cuda:N.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of folds, init and shuffling (default 0).")] = None,
    subjects: Annotated[Optional[str], typer.Option(help="Subjects to use, e.g. 1,2,5 (default: all).")] = None,
    progress: Annotated[Optional[bool], typer.Option(help="Show progress bars.")] = None,
) -> None:
    """Run a named ablation study on one store under one protocol (resumable: finished rows are
    read back) and write study.md + study.png: each row's accuracy and macro F1, mean ± std over
    folds, with its protocol (leaky rows marked)."""
    from store_schema.errors import MilmerError
    from train.study import run_study, study_fields

    try:
        fields = study_fields(config, store=store[0], labels=labels, protocol=protocol, epochs=epochs,
                              folds=folds, device=device, seed=seed,
                              subjects=_parse_ints(subjects, "subjects"))
        rows = run_study(study, out, fields=fields, stores=store, console=err_console,
                         progress=bool(progress))
    except MilmerError as err:
        raise _fail(str(err)) from None
    for row in rows:
        tokens = f"tokens {row['tokens']}: " if len(store) > 1 else ""
        console.print(f"{tokens}{row['label']:<40} accuracy {row['accuracy_mean']:.3f} ± "
                      f"{row['accuracy_std']:.3f}  macro F1 {row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f}"
                      f"  (chance {row['chance']:.3f}, {row['protocol']}"
                      f"{', LEAKY' if row['leaky'] else ''})", highlight=False, markup=False)
    console.print(f"{out / 'study.md'}\n{out / 'study.png'}", highlight=False)


def main() -> None:  # pragma: no cover - console entry
    app()
