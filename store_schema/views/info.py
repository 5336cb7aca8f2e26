"""What ``milmer store info`` reports: per subject and stage, state, fingerprint, shapes, bytes."""

from __future__ import annotations

from typing import Any

from store_schema.contract.layout import Stage, stage_spec
from store_schema.engine.store import FeatureStore, StageRecord


def _schema_order(stage: Stage):  # noqa: ANN202 - a sort key
    names = [a.name for a in stage_spec(stage).arrays]
    return lambda name: names.index(name) if name in names else len(names)


def store_report(store: FeatureStore) -> dict[str, Any]:
    rows = []
    tokens: list[tuple[int, StageRecord]] = []
    for subject, stage, state in store.iter_stages():
        if state == "absent":
            continue
        record = store.record(subject, stage)
        if stage == Stage.tokens and state == "committed" and record is not None:
            tokens.append((subject, record))
        group = store.stage_group(subject, stage)
        arrays: dict[str, Any] = {}
        size = 0
        present = dict(group.arrays()) if group is not None else {}
        # the schema's order, so the main array of each stage comes first
        for name in sorted(present, key=_schema_order(stage)):
            array = present[name]
            stored = array.nbytes_stored()
            size += stored
            arrays[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "bytes": stored}
        rows.append({
            "subject": subject, "stage": stage.value, "state": state,
            "fingerprint": record.fingerprint if record else None,
            "completed_at": record.completed_at if record else None,
            "wall_seconds": record.wall_seconds if record else None,
            "arrays": arrays, "bytes": size,
        })
    return {
        "store": store.url,
        "schema_version": store.schema_version,
        "stages": rows,
        "token_weights": token_weights(tokens),
        "total_bytes": sum(r["bytes"] for r in rows if r["state"] == "committed"),
    }


def token_weights(tokens: list[tuple[int, StageRecord]]) -> list[dict[str, Any]]:
    """The Swin weights committed tokens (subject, tokens record) were made from, one entry per
    content fingerprint: the spec as given, repo and revision (hub weights), kind, origin, file
    sha256s, and which subjects. Tokens written before provenance was recorded give their
    fingerprint and kind only."""
    found: dict[str, dict[str, Any]] = {}
    for subject, record in tokens:
        extra = record.extra
        fingerprint = extra.get("weights_fingerprint") or record.params.get("weights_fingerprint")
        entry = found.setdefault(str(fingerprint), {
            "fingerprint": fingerprint, "kind": extra.get("weights_kind"),
            "random": bool(extra.get("random_weights")), "subjects": [],
            **{k: v for k, v in (extra.get("weights") or {}).items()
               if k in ("spec", "repo", "revision", "path", "files", "origin", "face_tuned")}})
        entry["subjects"].append(subject)
    return list(found.values())
