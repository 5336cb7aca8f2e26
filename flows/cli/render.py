"""What the commands print: the two consoles and the tables of ``inspect``, ``preprocess``
(its plan and its summary) and ``store info``.

Every command prints through ``render.console`` / ``render.err_console`` (looked up when it
prints), so a test can swap them for recording consoles in one place.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(soft_wrap=True)  # problem lines stay one line, greppable
err_console = Console(stderr=True, soft_wrap=True)

STATUS_COLOURS = {"computed": "green", "skipped": "dim", "failed": "red"}
NOTE_COLOURS = {"failed": "red", "warning": "yellow", "note": "cyan"}
PLAN_COLOURS = {"up to date": "dim", "would compute": "green", "cannot run": "red"}


def print_scan(scan) -> None:  # noqa: ANN001 - pipeline.readers.deap.DeapScan, imported lazily
    """``milmer inspect``: the folder's layout, a table of subjects, every problem, a verdict."""
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


def print_plan(found) -> None:  # noqa: ANN001 - flows.plan.RunPlan
    """``milmer preprocess --plan``: every subject-stage, what would happen and why."""
    table = Table(title="preprocess plan")
    for column in ("subject", "stage", "action", "why"):
        table.add_column(column)
    for e in found.entries:
        table.add_row(f"s{e.subject:02d}", e.stage.value,
                      f"[{PLAN_COLOURS[e.action]}]{e.action}[/]", escape(e.reason))
    console.print(table)
    console.print(", ".join(f"{n} {k}" for k, n in found.counts().items()))


def print_summary(summary, *, random_weights: bool = False) -> None:  # noqa: ANN001 - RunSummary
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


def print_store_report(store: str, report: dict[str, Any]) -> None:
    """``milmer store info``: per subject and stage, its state, fingerprint, main array, size, time."""
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
    for weights in report.get("token_weights", []):
        console.print(weights_line(weights), highlight=False, markup=False)
    console.print(f"schema version {report['schema_version']}; "
                  f"{report['total_bytes'] / 2**20:.1f} MiB in committed arrays")


def weights_line(weights: dict[str, Any]) -> str:
    """``tokens of s01, s02: hf-hub:ORG/NAME (repo ORG/NAME at 1a2b3c4d, sha256:...)``."""
    subjects = ", ".join(f"s{s:02d}" for s in weights["subjects"])
    named = weights.get("spec") or weights.get("path") or weights.get("kind") or "unknown"
    where = [f"repo {weights['repo']} at {str(weights.get('revision'))[:12]}"] if weights.get("repo") else []
    if weights.get("origin") not in (None, "random", "checkpoint"):
        where.insert(0, f"{weights['origin']}, tuned on faces" if weights.get("face_tuned")
                     else str(weights["origin"]))
    what = "RANDOM weights" if weights.get("random") else weights.get("fingerprint")
    return f"tokens of {subjects}: {named} ({', '.join([*where, str(what)])})"


def print_study_rows(rows: list[dict[str, Any]], *, several_stores: bool) -> None:
    """``milmer ablate``: one line per row, accuracy and macro F1 as mean ± std over folds."""
    for row in rows:
        tokens = f"tokens {row['tokens']}: " if several_stores else ""
        console.print(f"{tokens}{row['label']:<40} accuracy {row['accuracy_mean']:.3f} ± "
                      f"{row['accuracy_std']:.3f}  macro F1 {row['macro_f1_mean']:.3f} ± {row['macro_f1_std']:.3f}"
                      f"  (chance {row['chance']:.3f}, {row['protocol']}"
                      f"{', LEAKY' if row['leaky'] else ''})", highlight=False, markup=False)


def print_protocol_rows(study: dict[str, Any]) -> None:
    """``milmer ablate paper-protocol``: one line per row, every leaky figure labelled, then the
    optimism of the published protocol."""
    for row in study["rows"]:
        tag = f"{row['protocol']}, per subject, epoch chosen by {row['selection']}"
        leaky = ", LEAKY" if row["leaky"] else ""
        console.print(f"{row['label']:<28} accuracy {row['accuracy']:.3f} ± {row['accuracy_std']:.3f}  "
                      f"(chance {row['chance']:.3f}, {tag}{leaky})", highlight=False, markup=False)
        if "last_epoch_accuracy" in row:
            console.print(f"{'  same split, last epoch':<28} accuracy {row['last_epoch_accuracy']:.3f} ± "
                          f"{row['last_epoch_accuracy_std']:.3f}  ({row['protocol']}, LEAKY)",
                          highlight=False, markup=False)
    for row in study.get("not_run", []):
        console.print(f"{row['label']:<28} not run: {row['why']}", highlight=False, markup=False)
    gap = study.get("optimism")
    if gap:
        o = gap["overall"]
        console.print(f"optimism of the published protocol {o['total']:+.3f} ± {o['total_std']:.3f} over "
                      f"subjects (test chose the epoch {o['test_chose_epoch']:+.3f}, split and rest "
                      f"{o['split_and_rest']:+.3f})", highlight=False, markup=False)
