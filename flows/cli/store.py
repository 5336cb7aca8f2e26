"""``milmer store info|verify|faces``: look into a feature store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

import flows.cli.render as render
from flows.cli.errors import fail
from flows.cli.options import StoreArgument

app = typer.Typer(help="Look into a feature store.", no_args_is_help=True)


def open_store(url: str):  # noqa: ANN201 - store_schema.engine.store.FeatureStore
    """The store at ``url`` opened for reading; exit 2 naming the problem when it cannot be."""
    from store_schema.errors import StoreError
    from store_schema.engine.store import FeatureStore

    try:
        return FeatureStore.open(url, mode="r")
    except StoreError as err:
        raise fail(str(err)) from None


@app.command("info")
def store_info(
    store: StoreArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per subject and stage: committed or not, fingerprint, shapes, bytes on disk."""
    from store_schema.views.info import store_report

    report = store_report(open_store(store))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    render.print_store_report(store, report)


@app.command("verify")
def store_verify(
    store: StoreArgument,
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

    console = render.console
    opened = open_store(store)
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
            raise fail(f"repair failed: {err}") from None
        for done in repairs:
            console.print(escape(str(done)), highlight=False)
        console.print(f"{len(repairs)} subject-stage(s) uncommitted; the next `milmer preprocess` "
                      "(same --stages and settings) recomputes them")
    for note in pending_stages(opened):
        console.print(f"[yellow]note[/] {escape(str(note))}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {committed} committed subject-stages verified")


@app.command("faces")
def store_faces(
    store: StoreArgument,
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
        sheet = read_face_sheet(open_store(store), subject,
                                select=lambda experiment: sheet_rows(experiment, trial=trial,
                                                                     max_rows=max_rows))
    except StoreError as err:
        raise fail(str(err)) from None
    if not sheet.rows:
        raise fail(f"{store}: subject {subject} has no segment of Experiment_id {trial}")
    title = (f"s{subject:02d}: {sheet.rows} of {sheet.n_segments} segments; "
             f"{sheet.detected_fraction:.1%} of frames detected; red = not detected")
    image = contact_sheet(crops=sheet.crops, detected=sheet.detected, has_video=sheet.has_video,
                          labels=sheet.labels, title=title)
    path = write_png(out or Path(f"faces_s{subject:02d}.png"), image)
    render.console.print(f"wrote {path} ({image.shape[1]}x{image.shape[0]} px, {sheet.rows} segments)")
