"""What ``milmer store info`` reports: per subject and stage, state, fingerprint, shapes, bytes."""

from __future__ import annotations

from typing import Any

from store_schema.contract.layout import Stage, stage_spec
from store_schema.engine.store import FeatureStore


def _schema_order(stage: Stage):  # noqa: ANN202 - a sort key
    names = [a.name for a in stage_spec(stage).arrays]
    return lambda name: names.index(name) if name in names else len(names)


def store_report(store: FeatureStore) -> dict[str, Any]:
    rows = []
    for subject, stage, state in store.iter_stages():
        if state == "absent":
            continue
        record = store.record(subject, stage)
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
        "total_bytes": sum(r["bytes"] for r in rows if r["state"] == "committed"),
    }
