"""``milmer preprocess`` (and its ``--plan``), ``milmer serve`` and ``milmer report``: building the
feature store, serving the flow that builds it, and the QC reports on what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

import flows.cli.render as render
from flows.cli.errors import fail, one_line
from flows.cli.options import (DaskAddress, ProgressFlag, StoreArgument, Verbose, parse_ints,
                                parse_stages)

if TYPE_CHECKING:
    from flows.config import PreprocessConfig

app = typer.Typer()

SECTION_OF_FLAG = {"source": "ingest", "l_freq": "eeg", "h_freq": "eeg", "ica_seed": "eeg",
                   "window_s": "segment", "stride_s": "segment", "amp": "tokens"}
"""Flags that set a field of one stage's parameters (``--l-freq`` is ``eeg.l_freq``)."""


def config_from_flags(config_file: Path | None, **flags: object) -> PreprocessConfig:
    """The fields of ``--config`` (a JSON file), overridden by every flag given (None: not given),
    validated as one :class:`~flows.config.PreprocessConfig`; a bad file or field exits 2 naming it."""
    from pydantic import ValidationError

    from flows.config import PreprocessConfig

    fields: dict = {}
    if config_file is not None:
        try:
            fields = json.loads(config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise fail(f"--config {config_file}: not a readable JSON file ({err})") from None
        if not isinstance(fields, dict):
            raise fail(f"--config {config_file}: expected a JSON object of PreprocessConfig fields, "
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
        raise fail(one_line(err)) from None


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
                     "folder, hf-hub:ORG/NAME[@REVISION] (read from the Hugging Face cache, offline), "
                     "'imagenet', 'face-emotion', or 'random[:SEED]'."),
    ] = None,
    download_weights: Annotated[
        bool, typer.Option(help="Fetch an hf-hub:/alias --weights into the Hugging Face cache first "
                           "(the only step that goes online; without it a cache miss is refused).")
    ] = False,
    device: Annotated[Optional[str], typer.Option(help="Tokens device: auto (CUDA when present), cpu, cuda.")] = None,
    amp: Annotated[
        Optional[str],
        typer.Option(help="Tokens precision: auto (bf16 where the GPU or CPU computes it natively, "
                     "else fp16 on CUDA, float32 on CPU), bf16, fp16 (CUDA), off (float32)."),
    ] = None,
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
    dask_address: DaskAddress = None,
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
    progress: ProgressFlag = None,
    verbose: Verbose = False,
) -> None:
    """Build or update the feature store: only subject-stages whose inputs or settings changed run.

    Runs the `preprocess-deap` Prefect flow in this process (with Prefect's temporary local API
    unless PREFECT_API_URL points at a server). Prints a subject x stage summary (computed /
    skipped / failed, seconds). Exit 0 only if every requested subject-stage is complete.
    """
    from flows.plan import summary_if_up_to_date
    from store_schema.errors import MilmerError

    if download_weights and weights:
        from pipeline.weights.swin_source import fetch_weights

        try:
            fetch_weights(weights)
        except MilmerError as err:
            raise fail(str(err)) from None

    cfg = config_from_flags(
        config, deap=str(deap), store=store, subjects=parse_ints(subjects, "subjects"),
        stages=parse_stages(stages), content_hash=content_hash or None, force=force or None,
        runner=runner, workers=workers, dask_address=dask_address,
        dask_gpu_resource=dask_gpu_resource, weights=weights, device=device, amp=amp, source=source,
        l_freq=l_freq, h_freq=h_freq, ica_seed=ica_seed, window_s=window_s, stride_s=stride_s,
        report=None if report is None else str(report))
    if plan:
        print_plan(cfg, as_json=as_json)
        raise typer.Exit(0)
    try:
        # Checked here, before Prefect is imported; with --report the flow checks (and reports).
        summary = summary_if_up_to_date(cfg) if cfg.report is None else None
        if summary is None:
            import atexit

            from flows.preprocess import quiet_prefect_console, run_flow  # Prefect: only now
            from store_schema.run.progress import choose

            # the reporter speaks for the run; registered before the run, the undo comes after
            # Prefect stops its temporary API at exit (a line not worth printing either)
            atexit.register(quiet_prefect_console())
            reporter = choose(progress, local=cfg.runner == "threads" and not cfg.dask_address,
                              notes=verbose)
            summary = run_flow(cfg, skip_when_up_to_date=cfg.report is not None, reporter=reporter)
    except MilmerError as err:
        raise fail(str(err)) from None
    if as_json:
        print(summary.model_dump_json(indent=2))
    else:
        render.print_summary(summary, random_weights=str(cfg.tokens.weights).startswith("random"))
    raise typer.Exit(0 if summary.ok else 1)


def print_plan(cfg: PreprocessConfig, *, as_json: bool) -> None:
    """What the run would recompute and why: a table (or JSON) of every subject-stage."""
    from flows.plan import plan_run
    from store_schema.errors import MilmerError

    try:
        found = plan_run(cfg)
    except MilmerError as err:
        raise fail(str(err)) from None
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    render.print_plan(found)


@app.command()
def serve(
    deap: Annotated[Optional[Path], typer.Option(help="Default DEAP folder of the deployment's runs.")] = None,
    store: Annotated[Optional[str], typer.Option(help="Default feature store of the deployment's runs.")] = None,
    runner: Annotated[Optional[str], typer.Option(help="'processes' or 'threads' for subject-stages.")] = None,
    dask_address: DaskAddress = None,
    weights: Annotated[Optional[str], typer.Option(help="Default Swin weights (a path, hf-hub:ORG/NAME[@REV], imagenet, face-emotion or random).")] = None,
    dask_gpu_resource: Annotated[
        Optional[str], typer.Option(help="Default Dask worker resource for tokens, e.g. GPU.")
    ] = None,
    stages: Annotated[Optional[str], typer.Option(help="Default stages, comma-separated.")] = None,
    runs: Annotated[Optional[Path], typer.Option(
        help="Folder of train-heads runs that name no \"out\" (default: ./runs).")] = None,
) -> None:
    """Serve the deployments `preprocess-deap/default` and `train-heads/default` to the Prefect
    server at PREFECT_API_URL.

    Then `prefect deployment run preprocess-deap/default` runs it, with these defaults or with
    `--params '{"config": {"deap": "...", "store": "..."}}'`, and `prefect deployment run
    train-heads/default --params '{"config": {"store": "...", "epochs": 20}}'` trains on a store
    (--store by default). Restart after upgrading the code.
    """
    from flows.serve import serve as serve_deployment

    config = None
    if deap is not None or store is not None:
        if deap is None or store is None:
            raise fail("give both --deap and --store as defaults, or neither")
        config = config_from_flags(
            None, deap=str(deap), store=store, runner=runner, dask_address=dask_address,
            dask_gpu_resource=dask_gpu_resource, weights=weights, stages=parse_stages(stages))
    serve_deployment(config, runs_dir=runs)


@app.command()
def report(
    store: StoreArgument,
    out: Annotated[Path, typer.Option(help="Folder for sub-NN_report.html pages and index.html.")],
    subjects: Annotated[Optional[str], typer.Option(help="Subjects, e.g. 1,2 (default: all ingested).")] = None,
) -> None:
    """QC reports (MNE Report HTML): per subject, what ICA removed (component topographies,
    properties, EOG scores, EEG around the strongest blink, spectra), the face crops (detection
    per trial, a strip of crops, video alignment), token norms and the stage records."""
    from flows.qc import write_qc_reports
    from store_schema.errors import MilmerError

    try:
        written = write_qc_reports(store, out, subjects=parse_ints(subjects, "subjects"),
                                   log=lambda line: render.console.print(escape(line), highlight=False))
    except MilmerError as err:
        raise fail(str(err)) from None
    render.console.print(f"wrote {len(written) - 1} subject report(s); open {written[-1]}")
