#!/usr/bin/env python3
"""Container health check for the milmer images (stdlib only; exit 0 healthy, 1 not).

- ``MILMER_HEALTH_URL`` set: GET it; healthy on HTTP 200 (Prefect ``/api/health``, Dask ``/health``).
- Always: the project imports and the face model at ``MILMER_FACE_MODEL`` (when set) exists.
- ``MILMER_HEALTH_CUDA=1`` (the CUDA image): torch must see a CUDA device.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.request
from pathlib import Path


def check() -> str | None:
    """The first problem found, or None."""
    url = os.environ.get("MILMER_HEALTH_URL")
    if url:
        try:
            with urllib.request.urlopen(url, timeout=float(os.environ.get("MILMER_HEALTH_TIMEOUT", "5"))) as r:
                if r.status != 200:
                    return f"{url} answered HTTP {r.status}"
        except OSError as err:  # URLError, HTTPError, timeouts, refused connections
            return f"{url}: {err}"
    for package in ("flows", "pipeline", "store_schema"):
        if importlib.util.find_spec(package) is None:
            return f"package {package} is not installed"
    model = os.environ.get("MILMER_FACE_MODEL")
    if model and not Path(model).is_file():
        return f"face model {model} is missing"
    if os.environ.get("MILMER_HEALTH_CUDA") == "1":
        import torch

        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA device"
    return None


def main() -> int:
    problem = check()
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
