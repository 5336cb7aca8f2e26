"""``milmer export``: a store's arrays for tools that do not read Zarr, subject by subject.

Two formats, both written one subject at a time (memory bounded by one subject's arrays):

* ``npz`` — ``OUT/sNN.npz`` per subject (``numpy.load`` alone reads it): every array of the
  chosen stages as ``<stage>.<array>`` (``segment.eeg``, ``tokens.tokens``, ``faces.detected``...),
  the labels of every scheme as ``labels.<scheme>`` (``labels.deap4``...) and ``subject``;
* ``hf`` — a Hugging Face ``datasets`` folder (``datasets.load_from_disk(OUT)`` gives a
  ``DatasetDict`` with one split per subject, ``s01``...), one row per segment with the same
  names as columns (per-segment stages only: segment, faces, tokens).

Beside them, ``OUT/README.md`` (a data card) and ``OUT/card.json`` (the same, for programs): shapes,
dtypes, units, sampling rate, channel order, labels and their rules, and each subject-stage's
provenance (its record: fingerprint, code version, parameters, inputs, library versions, weights
of the tokens). The store's address is written without user, password or query; record keys that
look like credentials are never copied.

A subject is exported when its segment stage and every chosen stage are committed and not stale;
the others are listed in the card with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from store_schema.contract.labels import LabelScheme, class_names, make_labels
from store_schema.contract.layout import STAGE_ORDER, Stage, stage_spec
from store_schema.contract.staleness import stale_reason
from store_schema.engine.store import FeatureStore, StageRecord
from store_schema.run import progress
from store_schema.errors import StoreError

FORMATS = ("npz", "hf")
DEFAULT_STAGES = (Stage.segment, Stage.faces, Stage.tokens)
"""The per-segment stages (one row per segment); ``ingest`` and ``eeg`` (whole trials) on request,
in ``npz`` only."""
PER_SEGMENT = {Stage.segment, Stage.faces, Stage.tokens}
SFREQ = 128.0
"""Sampling rate of the stored EEG (DEAP's preprocessed data), when the ingest record lacks it."""
_SECRET = re.compile(r"(^|[_\-.])(key|secret|password|passwd|credentials?|token|auth|"
                     r"access_key\w*|session_token)($|[_\-.])", re.IGNORECASE)
_BIG_LIST = 64


@dataclass
class ExportReport:
    out: Path
    fmt: str
    subjects: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    bytes: int = 0


def export_store(store: FeatureStore, out: Path | str, *, fmt: str, subjects: Sequence[int] | None = None,
                 stages: Sequence[str] | None = None) -> ExportReport:
    """Write the export; raise :class:`StoreError` (one line) for bad arguments or nothing to export.
    Reports each subject to this process's progress reporter (:mod:`store_schema.run.progress`)."""
    out = Path(out)
    if fmt not in FORMATS:
        raise StoreError(f"--format {fmt!r}: choose npz or hf")
    chosen = _stages(stages, fmt)
    if fmt == "hf":
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise StoreError("--format hf needs the Hugging Face `datasets` package: pip install "
                             "'milmer-deap[export]' (or `datasets`)") from None
    _check_out(out)
    wanted = sorted(set(subjects)) if subjects else store.subjects()
    report = ExportReport(out=out, fmt=fmt)
    ready: list[int] = []
    for s in wanted:
        reason = _unexportable(store, s, chosen)
        if reason:
            report.skipped.append(f"s{s:02d}: {reason}")
        else:
            ready.append(s)
    if not ready:
        detail = "; ".join(report.skipped) or "the store holds no subject"
        raise StoreError(f"{public_url(store.url)}: nothing to export ({detail})")
    out.mkdir(parents=True, exist_ok=True)
    shapes: dict[str, dict[str, Any]] = {}
    reporter = progress.current()
    reporter.begin(f"export {fmt}", total=len(ready))
    for s in ready:
        reporter.start(f"s{s:02d}")
        arrays = subject_arrays(store, s, chosen)
        shapes.update({k: {"shape": list(v.shape[1:]) if _per_segment(k) else list(v.shape),
                           "dtype": str(v.dtype)} for k, v in arrays.items()})
        if fmt == "npz":
            path = out / f"s{s:02d}.npz"
            tmp = out / f".s{s:02d}.tmp.npz"
            np.savez(tmp, **arrays)
            tmp.replace(path)
        else:
            from store_schema.views.export_hf import write_subject

            path = write_subject(out, s, arrays)
        del arrays
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        report.subjects.append(s)
        report.files.append(path)
        report.bytes += size
        reporter.finish(f"s{s:02d}", f"s{s:02d}: {path.name} ({size / 2**20:,.1f} MiB)")
    if fmt == "hf":
        from store_schema.views.export_hf import write_index

        write_index(out, [f"s{s:02d}" for s in report.subjects])
    card = data_card(store, report, chosen, shapes)
    (out / "card.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    (out / "README.md").write_text(card_markdown(card))
    return report


def _stages(stages: Sequence[str] | None, fmt: str) -> list[Stage]:
    try:
        chosen = [Stage(s) for s in stages] if stages else list(DEFAULT_STAGES)
    except ValueError as err:
        raise StoreError(f"--stages: {err}; stages: {', '.join(s.value for s in STAGE_ORDER)}") from None
    if fmt == "hf" and set(chosen) - PER_SEGMENT:
        odd = ", ".join(s.value for s in chosen if s not in PER_SEGMENT)
        raise StoreError(f"--stages {odd}: whole trials, not segments; the hf format has one row "
                         "per segment (segment, faces, tokens); export them with --format npz")
    if Stage.segment not in chosen:
        chosen.insert(0, Stage.segment)  # labels and the segment table come from it
    return sorted(set(chosen), key=STAGE_ORDER.index)


def _check_out(out: Path) -> None:
    """Refuse a folder that holds anything but an earlier export; clear an earlier export's
    subjects (the new card lists only what it writes)."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out}: is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "card.json").is_file():
        raise StoreError(f"--out {out}: not empty and not an earlier export; choose another folder")
    if out.is_dir():
        for old in out.iterdir():
            if re.fullmatch(r"s\d+\.npz", old.name) or old.name == "dataset_dict.json":
                old.unlink()
            elif re.fullmatch(r"s\d+", old.name) and (old / "dataset_info.json").is_file():
                shutil.rmtree(old)


def _unexportable(store: FeatureStore, subject: int, stages: list[Stage]) -> str | None:
    for stage in stages:
        if store.record(subject, stage) is None:
            return f"its {stage.value} stage is not committed"
        stale = stale_reason(store, subject, stage)
        if stale:
            return f"{stage.value} stage: {stale}"
    return None


def _per_segment(key: str) -> bool:
    stage = key.split(".", 1)[0]
    return key.startswith("labels.") or stage in {s.value for s in PER_SEGMENT}


def subject_arrays(store: FeatureStore, subject: int, stages: list[Stage]) -> dict[str, np.ndarray]:
    """Every array of ``stages`` as ``<stage>.<array>``, the labels as ``labels.<scheme>`` and
    ``subject``: one subject's export."""
    arrays: dict[str, np.ndarray] = {}
    for stage in stages:
        for spec in stage_spec(stage).arrays:
            arrays[f"{stage.value}.{spec.name}"] = store.read(subject, stage, spec.name)
    valence, arousal = arrays["segment.valence"], arrays["segment.arousal"]
    for scheme in LabelScheme:
        try:
            arrays[f"labels.{scheme.value}"] = make_labels(scheme, valence=valence,
                                                           arousal=arousal).astype(np.int64)
        except ValueError:
            pass  # ratings outside 1-9: the card says which labels are missing
    arrays["subject"] = np.asarray(subject, np.int64)
    return arrays


# -- the data card -------------------------------------------------------------------------------


def public_url(url: str) -> str:
    """``url`` without user, password, query or fragment (a local path unchanged)."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive)
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _clean(value: Any) -> Any:
    """A record's value for the card: credential-looking keys dropped, long lists summarised."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if not _SECRET.search(str(k))}
    if isinstance(value, (list, tuple)):
        if len(value) > _BIG_LIST:
            return f"<{len(value)} items, in the store's record>"
        return [_clean(v) for v in value]
    return value


def provenance(record: StageRecord) -> dict[str, Any]:
    return _clean({"fingerprint": record.fingerprint, "code_version": record.code_version,
                   "completed_at": record.completed_at, "params": record.params,
                   "inputs": record.inputs, "libraries": record.libraries, "extra": record.extra})


def data_card(store: FeatureStore, report: ExportReport, stages: list[Stage],
              shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    first = report.subjects[0]
    ingest = store.record(first, Stage.ingest)
    extra = ingest.extra if ingest is not None else {}
    columns = {}
    for key, shape in shapes.items():
        stage, _, name = key.partition(".")
        if stage == "labels":
            doc = f"{name} class: {', '.join(f'{i} = {c}' for i, c in enumerate(class_names(name)))}"
        elif stage == "subject":
            doc = "subject number"
        else:
            doc = stage_spec(stage).array(name).description
        columns[key] = {**shape, "per": "segment" if _per_segment(key) else "subject", "description": doc}
    return {
        "title": "milmer-deap feature store export",
        "format": report.fmt,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "store": public_url(store.url),
        "layout": ("one file sNN.npz per subject (numpy.load)" if report.fmt == "npz" else
                   "datasets.load_from_disk(folder): a DatasetDict, one split sNN per subject, "
                   "one row per segment"),
        "subjects": report.subjects,
        "skipped": report.skipped,
        "stages": [s.value for s in stages],
        "columns": columns,
        "eeg": {"sampling_rate_hz": float(extra.get("sfreq", SFREQ)),
                "window": "3 s segments of 384 samples (segment.eeg), µV",
                "channel_order": extra.get("channels") or
                "not recorded by this store's ingest stage (DEAP's preprocessed data: Geneva order)"},
        "labels": ("from the trial's valence and arousal ratings (1-9): DEAP-4 quadrants with high "
                   "at >= 5 (paper eq. 5), DEAP-2 per dimension (high at >= 5), DEAP-3 low < 4 "
                   "<= medium < 7 <= high"),
        "provenance": {f"s{s:02d}": {stage.value: provenance(record) for stage in stages
                                     if (record := store.record(s, stage)) is not None}
                       for s in report.subjects},
    }


def card_markdown(card: dict[str, Any]) -> str:
    hf = card["format"] == "hf"
    lines = [
        "---", "pretty_name: milmer-deap export", "tags: [eeg, emotion, deap]", "---", "",
        f"# {card['title']}", "",
        f"Exported {card['created']} from `{card['store']}` as `{card['format']}`: {card['layout']}. "
        f"Subjects {', '.join(f's{s:02d}' for s in card['subjects'])}; stages "
        f"{', '.join(card['stages'])}.", "",
        "```python",
        ("from datasets import load_from_disk\nsplits = load_from_disk(FOLDER)  # splits['s01'][0]"
         "['segment.eeg']" if hf else
         "import numpy as np\nsubject = np.load(FOLDER + '/s01.npz')  # subject['segment.eeg']"),
        "```", "",
        f"EEG: {card['eeg']['sampling_rate_hz']:g} Hz, {card['eeg']['window']}; channel order: "
        + (", ".join(card["eeg"]["channel_order"]) if isinstance(card["eeg"]["channel_order"], list)
           else card["eeg"]["channel_order"]) + ".", "",
        f"Labels: {card['labels']}.", "",
        "| name | per | shape | dtype | description |", "| --- | --- | --- | --- | --- |",
    ]
    for key, c in card["columns"].items():
        lines.append(f"| `{key}` | {c['per']} | {tuple(c['shape'])} | {c['dtype']} | {c['description']} |")
    if card["skipped"]:
        lines += ["", "Not exported: " + "; ".join(card["skipped"]) + "."]
    lines += ["", "Provenance (each subject-stage's record: fingerprint, code version, parameters, "
              "inputs, libraries, the tokens' weights) is in `card.json`."]
    if hf:
        lines += ["", "The features (`dataset_info.json`) keep the store's dtypes; `datasets`' numpy "
                  "and torch formatting returns its own (float16 and float64 as float32, int32 as "
                  "int64)."]
    return "\n".join(lines) + "\n"
