"""Face-expression datasets for fine-tuning: three on-disk formats read into one shape.

* **image folder** — ``train/<class>/*.{png,jpg,jpeg,bmp}``, optionally ``val/`` (or
  ``validation/``) and ``test/`` with the same classes: the layout of Kaggle's FER2013 and RAF-DB
  exports. A folder holding only class sub-folders is all train.
* **FER2013 CSV** — ``emotion,pixels,Usage``: 48x48 grey pixels as space-separated numbers, 7
  classes (angry .. neutral); Usage ``Training`` → train, ``PublicTest`` → val, ``PrivateTest`` →
  test (no Usage column: all train).
* **RAF-DB basic** — ``EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``), images in
  ``Image/aligned/train_00001_aligned.jpg``; labels 1..7 = surprise, fear, disgust, happiness,
  sadness, anger, neutral; ``train_`` / ``test_`` prefixes give the split.

Every image is returned as the tokens stage sees a face: uint8 RGB, 224x224, through the face
stage's own :func:`~pipeline.stages.faces.detect.center_pad` (grey → RGB). Classes are the ones
present, in the format's order (sorted folder names for an image folder). An unreadable image is
named in one line through ``log`` and skipped (kept in :attr:`FaceDataset.skipped`); a class
folder without an image or fewer than two classes is a :class:`FinetuneInputError`.

Splits: a given val/test is used as it is; a missing one is carved out of train, stratified by
class and seeded (``val_fraction`` of each class, at least one image of a class with two or more).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np

from pipeline.errors import FinetuneInputError
from pipeline.stages.faces.detect import center_pad
from store_schema.contract.fingerprint import file_fingerprint

IMAGE_SIZE = 224
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}
RAFDB_CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
RAFDB_LABELS = Path("EmoLabel") / "list_patition_label.txt"
RAFDB_IMAGES = Path("Image") / "aligned"
SPLITS = ("train", "val", "test")
_SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}

Ref = Union[Path, np.ndarray]
"""An image: its file, or its pixels (FER2013's grey 48x48 rows)."""

Log = Callable[[str], None]


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Split:
    refs: list[Ref] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FaceDataset:
    format: str
    """``image_folder``, ``fer2013_csv`` or ``rafdb``."""
    path: Path
    classes: list[str]
    splits: dict[str, Split]
    data_sha256: str
    """sha256 of the sorted file list (relative path and size per file), or of the CSV's content."""
    given_splits: list[str]
    """The splits the data defines (the others are carved out of train)."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """``{"file": ..., "reason": ...}`` for every image left out."""

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: {c: int(sum(1 for y in s.labels if y == i)) for i, c in enumerate(self.classes)}
                for name, s in self.splits.items()}


def to_model_image(image: np.ndarray) -> np.ndarray:
    """Grey or RGB(A) uint8 → the 224x224 RGB padded face the tokens stage sees."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return center_pad(np.ascontiguousarray(image, dtype=np.uint8), size=IMAGE_SIZE)


def read_file_image(path: Path) -> np.ndarray | None:
    """The RGB pixels of an image file, or ``None`` when it cannot be decoded."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if raw.size == 0:
        return None
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_at(ref: Ref) -> np.ndarray:
    """The padded 224x224 RGB image of ``ref`` (a file checked readable when the data was read)."""
    pixels = ref if isinstance(ref, np.ndarray) else read_file_image(ref)
    if pixels is None:
        raise FinetuneInputError(ref, "image became unreadable during fine-tuning")  # type: ignore[arg-type]
    return to_model_image(pixels)


# ---- format detection ----------------------------------------------------------------------------

def detect_format(path: Path) -> str:
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "fer2013_csv"
    if path.is_dir() and (path / "EmoLabel").is_dir():
        return "rafdb"
    if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
        return "image_folder"
    what = "no such file or folder" if not path.exists() else (
        "a file that is not a FER2013 .csv" if path.is_file() else "a folder with no sub-folder")
    raise FinetuneInputError(path, f"{what}; expected an image folder (train/<class>/*.png|jpg, "
                                   "or <class>/*.png), a FER2013 CSV (emotion,pixels,Usage) or a "
                                   "RAF-DB folder (EmoLabel/list_patition_label.txt + Image/aligned/)")


def read_dataset(path: Path | str, *, val_fraction: float = 0.1, seed: int = 0,
                 log: Log = log_to_stderr) -> FaceDataset:
    """Read ``path`` in whichever of the three formats it is, and complete its splits."""
    path = Path(path).expanduser()
    fmt = detect_format(path)
    reader = {"image_folder": _read_image_folder, "fer2013_csv": _read_fer2013,
              "rafdb": _read_rafdb}[fmt]
    data = reader(path, log)
    present = sorted({y for s in data.splits.values() for y in s.labels})
    if len(present) < 2:
        names = [data.classes[i] for i in present]
        raise FinetuneInputError(path, f"{len(present)} class(es) with images ({', '.join(names) or 'none'}); "
                                       "fine-tuning needs at least 2")
    if len(present) < len(data.classes):  # a label the data never uses: drop it, keep the order
        remap = {old: new for new, old in enumerate(present)}
        data.classes = [data.classes[i] for i in present]
        for s in data.splits.values():
            s.labels = [remap[y] for y in s.labels]
    carve_missing_splits(data, val_fraction=val_fraction, seed=seed)
    return data


# ---- image folder --------------------------------------------------------------------------------

def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_image_folder(root: Path, log: Log) -> FaceDataset:
    split_dirs: dict[str, Path] = {}
    for split, names in _SPLIT_FOLDERS.items():
        for name in names:
            if (root / name).is_dir():
                split_dirs[split] = root / name
                break
    if "train" not in split_dirs:
        if split_dirs:
            raise FinetuneInputError(root, f"has {', '.join(p.name + '/' for p in split_dirs.values())} "
                                           "but no train/ folder")
        split_dirs = {"train": root}
    classes = sorted(p.name for p in split_dirs["train"].iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FinetuneInputError(split_dirs["train"], "no class sub-folder (expected <class>/*.png|jpg)")
    data = FaceDataset(format="image_folder", path=root, classes=classes,
                       splits={s: Split() for s in SPLITS}, data_sha256="",
                       given_splits=sorted(split_dirs, key=SPLITS.index))
    listing: list[str] = []
    for split, folder in split_dirs.items():
        extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes
                       and not p.name.startswith("."))
        if extra:
            raise FinetuneInputError(folder / extra[0], f"class folder not in train/ "
                                                        f"(train has {', '.join(classes)})")
        for label, name in enumerate(classes):
            class_dir = folder / name
            if not class_dir.is_dir():
                continue  # a val/test without this class
            files = _images_in(class_dir)
            if not files:
                raise FinetuneInputError(class_dir, "class folder holds no image "
                                                    f"({', '.join(IMAGE_SUFFIXES)})")
            for file in files:
                listing.append(f"{file.relative_to(root).as_posix()}\t{file.stat().st_size}")
                if read_file_image(file) is None:
                    _skip(data, file, "unreadable image", log)
                    continue
                data.splits[split].refs.append(file)
                data.splits[split].labels.append(label)
    data.data_sha256 = _sha256_lines(listing)
    return data


# ---- FER2013 CSV ---------------------------------------------------------------------------------

def _read_fer2013(path: Path, log: Log) -> FaceDataset:
    data = FaceDataset(format="fer2013_csv", path=path, classes=list(FER2013_CLASSES),
                       splits={s: Split() for s in SPLITS}, data_sha256=sha256_hex(path),
                       given_splits=[])
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "emotion" not in fields or "pixels" not in fields:
            raise FinetuneInputError(path, f"columns {reader.fieldnames}: a FER2013 CSV needs "
                                           "emotion,pixels[,Usage]")
        reader.fieldnames = fields
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            usage = (row.get("usage") or "Training").strip().lower()
            split = FER2013_USAGE.get(usage)
            try:
                label = int(row["emotion"])
                pixels = np.array([int(v) for v in row["pixels"].split()], dtype=np.int64)
            except (TypeError, ValueError, AttributeError):
                _skip(data, where, "unreadable row (emotion or pixels not integers)", log)
                continue
            if split is None:
                _skip(data, where, f"unknown Usage {row.get('usage')!r}", log)
            elif not 0 <= label < len(FER2013_CLASSES):
                _skip(data, where, f"emotion {label} outside 0..6", log)
            elif pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                _skip(data, where, f"{pixels.size} pixels (need 2304 values 0..255)", log)
            else:
                data.splits[split].refs.append(pixels.astype(np.uint8).reshape(48, 48))
                data.splits[split].labels.append(label)
    data.given_splits = [s for s in SPLITS if data.splits[s].labels]
    if "train" not in data.given_splits:
        raise FinetuneInputError(path, "no usable Training row")
    return data


# ---- RAF-DB --------------------------------------------------------------------------------------

def _read_rafdb(root: Path, log: Log) -> FaceDataset:
    labels_file = root / RAFDB_LABELS
    images = root / RAFDB_IMAGES
    if not labels_file.is_file():
        raise FinetuneInputError(labels_file, "missing: a RAF-DB folder needs EmoLabel/list_patition_label.txt")
    if not images.is_dir():
        raise FinetuneInputError(images, "missing: a RAF-DB folder needs Image/aligned/")
    data = FaceDataset(format="rafdb", path=root, classes=list(RAFDB_CLASSES),
                       splits={s: Split() for s in SPLITS}, data_sha256="", given_splits=[])
    listing = [f"{RAFDB_LABELS.as_posix()}\t{sha256_hex(labels_file)}"]
    for line_no, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{labels_file}:{line_no}"
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 7:
            _skip(data, where, f"not '<name>.jpg <label 1..7>': {line.strip()!r}", log)
            continue
        name, label = parts[0], int(parts[1]) - 1
        split = "train" if name.startswith("train_") else "test" if name.startswith("test_") else None
        stem, suffix = Path(name).stem, Path(name).suffix
        file = images / f"{stem}_aligned{suffix}"
        if split is None:
            _skip(data, where, f"{name}: neither a train_ nor a test_ image", log)
        elif not file.is_file():
            _skip(data, file, "missing image", log)
        elif read_file_image(file) is None:
            _skip(data, file, "unreadable image", log)
        else:
            listing.append(f"{file.relative_to(root).as_posix()}\t{file.stat().st_size}")
            data.splits[split].refs.append(file)
            data.splits[split].labels.append(label)
    data.given_splits = [s for s in SPLITS if data.splits[s].labels]
    if "train" not in data.given_splits:
        raise FinetuneInputError(labels_file, "no usable train_ image")
    data.data_sha256 = _sha256_lines(listing)
    return data


# ---- splits --------------------------------------------------------------------------------------

def carve_missing_splits(data: FaceDataset, *, val_fraction: float, seed: int) -> None:
    """Carve each missing val/test split out of train (stratified, seeded)."""
    missing = [s for s in ("val", "test") if not data.splits[s].labels]
    if not missing:
        return
    if not 0 < val_fraction < 0.5:
        raise FinetuneInputError(data.path, f"val fraction {val_fraction} must be in (0, 0.5) to carve "
                                            f"{' and '.join(missing)} out of train")
    rng = np.random.default_rng(seed)
    train = data.splits["train"]
    labels = np.asarray(train.labels)
    keep = np.ones(len(labels), dtype=bool)
    taken: dict[str, list[int]] = {s: [] for s in missing}
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n = len(idx)
        k = int(round(val_fraction * n))
        k = min(max(k, 1), (n - 1) // len(missing)) if n >= 1 + len(missing) else 0
        for i, split in enumerate(missing):
            taken[split] += idx[i * k:(i + 1) * k].tolist()
        keep[idx[: k * len(missing)]] = False
    for split, chosen in taken.items():
        chosen.sort()
        data.splits[split] = Split([train.refs[i] for i in chosen], [train.labels[i] for i in chosen])
    rest = np.flatnonzero(keep)
    data.splits["train"] = Split([train.refs[i] for i in rest], [train.labels[i] for i in rest])
    for split in missing:
        if not data.splits[split].labels:
            raise FinetuneInputError(data.path, f"too few images to carve a {split} split "
                                                f"(val fraction {val_fraction})")


# ---- helpers -------------------------------------------------------------------------------------

def _skip(data: FaceDataset, where: Path | str, reason: str, log: Log) -> None:
    data.skipped.append({"file": str(where), "reason": reason})
    log(f"skipped: {where}: {reason}")


def _sha256_lines(lines: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def sha256_hex(path: Path) -> str:
    """The file's sha256 as hex (the store's content fingerprint without its ``sha256:``)."""
    return file_fingerprint(path, content=True).removeprefix("sha256:")


def describe(data: FaceDataset) -> dict[str, Any]:
    """The dataset as the model card records it."""
    return {"format": data.format, "path": str(data.path), "sha256": data.data_sha256,
            "sha256_of": "the CSV's content" if data.format == "fer2013_csv"
            else "the sorted list of files (relative path and size)",
            "classes": data.classes, "given_splits": data.given_splits,
            "split_counts": data.counts(),
            "images_skipped": len(data.skipped), "skipped": data.skipped}
