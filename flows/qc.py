"""``milmer report`` and ``milmer preprocess --report``: one QC page per subject and an index.

Reads the store through :mod:`store_schema.views.qc` and draws with :mod:`pipeline.qc.report`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store_schema.errors import StoreError
from store_schema.engine.store import FeatureStore

INDEX_FILE = "index.html"


def write_qc_reports(
    store_url: str, out: Path, *, subjects: list[int] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write ``sub-NN_report.html`` for each subject (default: every subject with a committed
    ingest) and ``index.html`` linking them; return the paths, the index last."""
    from pipeline.qc.report import ReportEntry, index_report, report_file, subject_report, write_report
    from store_schema.contract.layout import Stage
    from store_schema.views.qc import read_subject_qc

    store = FeatureStore.open(store_url, mode="r")
    chosen = subjects or [s for s in store.subjects() if store.record(s, Stage.ingest) is not None]
    if not chosen:
        raise StoreError(f"{store_url}: no subject has a committed ingest stage; nothing to report")
    written: list[Path] = []
    entries = []
    for subject in chosen:
        report, summary = subject_report(read_subject_qc(store, subject))
        path = write_report(report, out / report_file(subject))
        written.append(path)
        entries.append(ReportEntry(subject=subject, file=path.name, summary=summary))
        if log is not None:
            log(f"s{subject:02d}: {path} ({summary})")
    written.append(write_report(index_report(entries, store=store_url), out / INDEX_FILE))
    return written
