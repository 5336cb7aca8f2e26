"""Fingerprints: what decides whether a subject-stage must be recomputed.

A stage's fingerprint hashes its name, its code version, its own parameters and the fingerprints
of its inputs (files or upstream subject-stages). Library versions are recorded beside it but not
hashed: upgrading numpy does not invalidate a store (say ``--force`` to recompute).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

_CONTENT_BLOCK = 1 << 20


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the same value always gives the same text."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def stage_fingerprint(
    *, stage: str, code_version: str, params: Mapping[str, Any], inputs: Mapping[str, str]
) -> str:
    return digest({"stage": stage, "code_version": code_version, "params": params,
                   "inputs": dict(inputs)})


def file_fingerprint(path: Path | str, *, content: bool = False) -> str:
    """``size:mtime_ns`` of a file (cheap, the default) or ``sha256:<hex>`` of its bytes."""
    path = Path(path)
    stat = path.stat()
    if not content:
        return f"stat:{stat.st_size}:{stat.st_mtime_ns}"
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CONTENT_BLOCK):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def library_versions(names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
