"""``milmer export``: a store's arrays as NumPy ``.npz`` files or a Hugging Face ``datasets``
folder, with a data card, for tools that do not read Zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

import flows.cli.render as render
from flows.cli.errors import fail
from flows.cli.options import ProgressFlag, StoreArgument, parse_ints, parse_stages

app = typer.Typer()


@app.command()
def export(
    store: StoreArgument,
    out: Annotated[Path, typer.Option(help="Folder to write (new, or an earlier export to overwrite).")],
    export_format: Annotated[str, typer.Option(
        "--format", help="npz (sNN.npz per subject, numpy alone reads it) or hf (a Hugging Face "
        "datasets folder: datasets.load_from_disk).")] = "npz",
    subjects: Annotated[Optional[str], typer.Option(help="Subjects, e.g. 1,2,5 (default: all).")] = None,
    stages: Annotated[Optional[str], typer.Option(
        help="Stages whose arrays to export (default segment,faces,tokens: every per-segment "
        "array, crops included; ingest,eeg hold whole trials: npz only).")] = None,
    progress: ProgressFlag = None,
) -> None:
    """Export a store subject by subject, with a data card (README.md, card.json): shapes, dtypes,
    units, sampling rate, channel order, labels and every subject-stage's provenance.

    Subjects whose stages are not committed or stale are left out and listed. Exit 2 when nothing
    can be exported.
    """
    from store_schema.errors import StoreError
    from store_schema.run.progress import choose, use
    from store_schema.views.export import export_store

    from flows.cli.store import open_store

    opened = open_store(store)
    try:
        with use(choose(progress)):
            report = export_store(opened, out, fmt=export_format,
                                  subjects=parse_ints(subjects, "subjects"), stages=parse_stages(stages))
    except StoreError as err:
        raise fail(str(err)) from None
    for line in report.skipped:
        render.err_console.print(f"[yellow]skipped[/] {line}", highlight=False)
    render.console.print(
        f"wrote {len(report.subjects)} subject(s), {report.bytes / 2**20:,.1f} MiB, as "
        f"{export_format} to {out} (data card: {out / 'README.md'})", highlight=False)
