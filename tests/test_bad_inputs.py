"""Bad input suite (issue 8): corrupted `.dat` files, ratings CSVs, face videos, Swin weights,
parameters and stores, each through the real pipeline entry point.

For every case: the message names the file (or the parameter) and the problem in one line; the
other subjects complete (their subject-stages end committed); and what was committed before is
unchanged, array by array (sha256 of the decoded bytes) and fingerprint by fingerprint, except the
subject-stage the case legitimately recomputes. A folder-wide problem (the ratings CSV as a whole,
the weights, the parameters, the store) is refused before any work, and no byte of the store
changes.

One baseline store is built per module: both subjects of the small synthetic dataset through
ingest, eeg, segment and faces, and subject 2 through tokens (random weights). Each case corrupts
a private copy of the DEAP folder and of that store. Subject 1 is the one corrupted: it runs first,
so subject 2 runs after the failure, and subject 2's segment stage is uncommitted beforehand so that
it has real work to do (its recomputation is deterministic: its checksums must come back equal).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import pickle
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from pipeline.readers import deap_format as fmt
from store_schema.errors import MilmerError
from store_schema.contract.layout import SCHEMA_VERSION
from store_schema.engine.store import FeatureStore

BAD, GOOD = 1, 2
EEG = ("ingest", "eeg", "segment")
FACES = (*EEG, "faces")
ALL = (*FACES, "tokens")
ORDER = list(ALL)

# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------

Snapshot = dict[tuple[int, str], tuple[str, dict[str, str]]]


def array_sha(arr: np.ndarray) -> str:
    head = f"{arr.dtype.str}{arr.shape}".encode()
    return hashlib.sha256(head + np.ascontiguousarray(arr).tobytes()).hexdigest()


def snapshot(store_path: Path) -> Snapshot:
    """Every committed subject-stage: its commit fingerprint and the checksum of each array."""
    store = FeatureStore.open(str(store_path), mode="r")
    out: Snapshot = {}
    for subject, stage, state in store.iter_stages():
        if state == "committed":
            record = store.record(subject, stage)
            arrays = {name: array_sha(arr) for name, arr in store.read_stage(subject, stage).items()}
            out[(subject, stage.value)] = (record.fingerprint, arrays)
    return out


def store_bytes(path: Path) -> dict[str, str]:
    """Every file of the store (or the store itself if it is a file) by content: nothing may change."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)) if p != path else ".": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files}


# --------------------------------------------------------------------------------------------
# The baseline, and a private copy per case
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    deap: Path
    store: Path
    snapshot: Snapshot


@pytest.fixture(scope="module")
def baseline(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("bad-inputs")
    deap, store = root / "DEAP", root / "store.zarr"
    shutil.copytree(small_deap_master, deap)  # copy2: mtimes kept, so copies fingerprint the same
    built = run_chain_inline(PreprocessConfig(deap=deap, store=str(store), stages=list(FACES)))
    assert {o.status for o in built.outcomes} == {"computed"}, built.markdown()
    tokens = run_chain_inline(PreprocessConfig(deap=deap, store=str(store), subjects=[GOOD],
                                               stages=list(ALL), weights="random"))
    assert [(o.stage.value, o.status) for o in tokens.outcomes if o.status != "skipped"] == [
        ("tokens", "computed")], tokens.markdown()
    shot = snapshot(store)
    assert set(shot) == {(s, st) for s in (BAD, GOOD) for st in FACES} | {(GOOD, "tokens")}
    return Baseline(deap=deap, store=store, snapshot=shot)


@dataclass
class Ctx:
    """A private copy of the baseline's DEAP folder and store, and a scratch folder."""

    deap: Path
    store: Path
    scratch: Path
    monkeypatch: pytest.MonkeyPatch

    def dat(self, subject: int = BAD) -> Path:
        return self.deap / fmt.PREPROCESSED_DIR / fmt.dat_name(subject)

    @property
    def ratings(self) -> Path:
        return self.deap / fmt.METADATA_DIR / fmt.RATINGS_FILE

    def video(self, trial: int = 1, subject: int = BAD) -> Path:
        return self.deap / fmt.VIDEO_DIR / fmt.subject_tag(subject) / fmt.video_name(subject, trial)


def private_copy(base: Baseline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    ctx = Ctx(deap=tmp_path / "DEAP", store=tmp_path / "store.zarr", scratch=tmp_path / "scratch",
              monkeypatch=monkeypatch)
    shutil.copytree(base.deap, ctx.deap)
    shutil.copytree(base.store, ctx.store)
    ctx.scratch.mkdir()
    return ctx


# --------------------------------------------------------------------------------------------
# Corruptions
# --------------------------------------------------------------------------------------------

Overrides = dict[str, Any] | None


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def rewrite_dat(path: Path, change: Callable[[dict], object]) -> None:
    with path.open("rb") as f:
        obj = pickle.load(f, encoding="latin1")
    with path.open("wb") as f:
        pickle.dump(change(obj), f, protocol=2)


def set_value(key: str, index: tuple[int, ...], value: float) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        obj[key][index] = value
        return obj
    return change


def edit_rows(path: Path, subject: int, change: Callable[[list[dict]], list[dict]]) -> None:
    """Change one participant's rows of participant_ratings.csv; header and other rows as they were."""
    header, *lines = path.read_text().splitlines()
    rows = list(csv.DictReader(io.StringIO("\n".join([header, *lines]))))
    mine = [r for r in rows if int(r["Participant_id"]) == subject]
    others = [r for r in rows if int(r["Participant_id"]) != subject]
    out = [header] + [",".join(r[c] for c in fmt.RATINGS_COLUMNS) for r in change(mine) + others]
    path.write_text("\n".join(out) + "\n")


def drop_last_video(rows: list[dict]) -> list[dict]:
    """Three valid rows for four trials: Experiment_id 4 dropped, the later Trials renumbered."""
    (gone,) = [r for r in rows if r["Experiment_id"] == "4"]
    return [{**r, "Trial": str(int(r["Trial"]) - (int(r["Trial"]) > int(gone["Trial"])))}
            for r in rows if r is not gone]


def first_row(**values: str) -> Callable[[list[dict]], list[dict]]:
    return lambda rows: [{**rows[0], **values}, *rows[1:]]


def write_video(path: Path, frames: list[np.ndarray] | int, fps: float) -> None:
    """An MJPG .avi of ``frames`` (or of that many mid-grey 720x576 frames: no face anywhere)."""
    if isinstance(frames, int):
        frames = [np.full((576, 720, 3), 128, np.uint8)] * frames
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (720, 576))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


def every_nth_frame(path: Path, n: int, fps: float) -> None:
    """The same video with every n-th frame kept, at ``fps``: same duration, fewer frames."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    write_video(path, frames[::n], fps)


def patch_avi_rate(path: Path, rate: int, scale: int) -> None:
    """Rewrite the frame rate (dwRate / dwScale) in the stream header of an .avi, frames untouched."""
    data = bytearray(path.read_bytes())
    at = data.find(b"strh")
    assert at > 0
    struct.pack_into("<II", data, at + 28, scale, rate)  # after fccType, handler, flags, ...
    path.write_bytes(bytes(data))


@functools.lru_cache(maxsize=1)
def swin_state() -> dict:
    import timm
    import torch

    from pipeline.weights.swin_source import MODEL_NAME

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = timm.create_model(MODEL_NAME, pretrained=False, num_classes=0)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def swin_file(ctx: Ctx, name: str, change: Callable[[dict], dict] = lambda s: s) -> Path:
    from safetensors.torch import save_file

    path = ctx.scratch / name
    save_file(change({k: v.clone() for k, v in swin_state().items()}), str(path))
    return path


def without(key: str) -> Callable[[dict], dict]:
    def change(state: dict) -> dict:
        del state[key]
        return state
    return change


def resnet_file(ctx: Ctx) -> Path:
    import timm
    import torch

    path = ctx.scratch / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    return path


def weights(make: Callable[[Ctx], Path]) -> Callable[[Ctx], Overrides]:
    return lambda ctx: {"weights": str(make(ctx))}


def cut_weights(ctx: Ctx) -> Path:
    path = swin_file(ctx, "swin-cut.safetensors")
    truncate(path, 0.5)
    return path


def nan_weights(state: dict) -> dict:
    state["layers.1.blocks.0.mlp.fc1.weight"][0, :3] = float("nan")
    return state


def empty_file(ctx: Ctx, name: str) -> Path:
    path = ctx.scratch / name
    path.write_bytes(b"")
    return path


def text_file(ctx: Ctx, name: str) -> Path:
    path = ctx.scratch / name
    path.write_text("these are not weights\n")
    return path


def no_cuda(ctx: Ctx) -> Overrides:
    import torch

    ctx.monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    return {"weights": "random", "device": "cuda"}


def newer_schema(ctx: Ctx) -> None:
    meta = ctx.store / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] += 1
    meta.write_text(json.dumps(doc))


def older_schema(ctx: Ctx) -> None:
    meta = ctx.store / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["schema_version"] = 1
    meta.write_text(json.dumps(doc))


def store_is_a_file(ctx: Ctx) -> None:
    shutil.rmtree(ctx.store)
    ctx.store.write_text("not a store\n")


def store_is_another_zarr(ctx: Ctx) -> None:
    import zarr

    shutil.rmtree(ctx.store)
    zarr.open_group(str(ctx.store), mode="w").create_array("x", shape=(3,), dtype="int32")


def no_dat_files(ctx: Ctx) -> None:
    for path in (ctx.deap / fmt.PREPROCESSED_DIR).glob("*.dat"):
        path.unlink()


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------

Expect = Literal["error", "warning", "every", "refused"]


@dataclass(frozen=True)
class Case:
    name: str
    corrupt: Callable[[Ctx], Overrides]
    expect: Expect
    """error: `subject`'s `stage` fails, the other subject completes. warning: `subject`'s faces
    are computed with a warning (the only stage recomputed). every: `stage` fails for every subject
    (a parameter the data cannot take), the stages before it stay. refused: nothing runs."""
    names: str
    """The file (or parameter) the one line must name."""
    words: tuple[str, ...]
    """What it must say about the problem."""
    stages: tuple[str, ...] = EEG
    stage: str = "ingest"
    subject: int = BAD


def void(_: object) -> None:
    """A corruption that changes files only (no parameter overrides)."""


def dat(name: str, corrupt: Callable[[Path], None], *words: str) -> Case:
    return Case(f"dat: {name}", lambda ctx: void(corrupt(ctx.dat())), "error", "s01.dat", words)


def dat_arrays(name: str, change: Callable[[dict], object], *words: str) -> Case:
    return dat(name, lambda path: rewrite_dat(path, change), *words)


def ratings(name: str, corrupt: Callable[[Path], None], expect: Expect, *words: str) -> Case:
    return Case(f"csv: {name}", lambda ctx: void(corrupt(ctx.ratings)), expect, fmt.RATINGS_FILE,
                words)


def rows(name: str, change: Callable[[list[dict]], list[dict]], *words: str) -> Case:
    return ratings(name, lambda path: edit_rows(path, BAD, change), "error", *words)


def video(name: str, corrupt: Callable[[Path], None], *words: str) -> Case:
    return Case(f"video: {name}", lambda ctx: void(corrupt(ctx.video())), "warning", "s01_trial01.avi",
                words, stages=FACES, stage="faces")


def checkpoint(name: str, make: Callable[[Ctx], Path], file: str, *words: str) -> Case:
    return Case(f"weights: {name}", weights(make), "refused", file, words, stages=ALL)


def parameter(name: str, overrides: Overrides, expect: Expect, names: str, *words: str,
              stage: str = "ingest", subject: int = BAD) -> Case:
    return Case(f"parameter: {name}", lambda ctx: overrides, expect, names, words, stage=stage,
                subject=subject)


def store_case(name: str, corrupt: Callable[[Ctx], None], *words: str) -> Case:
    return Case(f"store: {name}", corrupt, "refused", "store.zarr", words)


CASES: list[Case] = [
    # -- data_preprocessed_python/s01.dat: subject 1 fails at ingest, subject 2 completes
    dat("truncated", lambda p: truncate(p, 0.5), "truncated pickle"),
    dat("empty file", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    dat("not a pickle", lambda p: p.write_text("MATLAB 5.0 MAT-file, Platform: GLNXA64"),
        "not a DEAP pickle"),
    dat("pickle that would run code", lambda p: p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR."),
        "refusing to load os.system"),
    dat_arrays("no 'labels' key", lambda o: {"data": o["data"]}, "missing key(s) 'labels'"),
    dat_arrays("wrong channel count", lambda o: {**o, "data": o["data"][:, :32]},
               "'data' has shape (4, 32, 896)", "expected (trials, 40 channels, samples)"),
    dat_arrays("labels of the wrong shape", lambda o: {**o, "labels": o["labels"][:-1]},
               "'labels' has shape (3, 4), expected (4, 4)"),
    dat_arrays("integer dtype", lambda o: {**o, "data": o["data"].astype(np.int32)},
               "'data' has dtype int32, expected floating point"),
    dat_arrays("NaN in the EEG", set_value("data", (1, 3, 500), np.nan),
               "'data' has 1 NaN/inf value(s), first at trial 2, channel F7, sample 500"),
    dat_arrays("inf in the labels", set_value("labels", (0, 0), np.inf),
               "'labels' has 1 NaN/inf value(s), first at Experiment_id 1, valence"),
    dat_arrays("a value beyond float32", set_value("data", (0, 0, 0), 1e300),
               "too large for float32", "first at trial 1, channel Fp1, sample 0"),
    dat_arrays("flat EEG (all zeros)", lambda o: {**o, "data": np.zeros_like(o["data"])},
               "all 32 EEG channels are constant (0)", "no signal"),
    dat_arrays("rating outside [1, 9]", set_value("labels", (2, 1), 9.5),
               "outside [1, 9], first: Experiment_id 3 arousal = 9.5"),
    dat_arrays("trials shorter than baseline + one window",
               lambda o: {**o, "data": o["data"][:, :, :500]},
               "500 samples per trial", "fewer than the 3 s baseline plus 3 s"),
    dat_arrays("no trials", lambda o: {"data": o["data"][:0], "labels": o["labels"][:0]},
               "'data' holds no trials"),
    # -- metadata_csv/participant_ratings.csv as a whole: refused before any work
    ratings("header missing a column",
            lambda p: p.write_text(p.read_text().replace('"Experiment_id"', '"ExperimentId"', 1)),
            "refused", "missing column(s) Experiment_id"),
    ratings("not comma-separated", lambda p: p.write_text(p.read_text().replace(",", ";")),
            "refused", "missing column(s) Participant_id", "(comma-separated), found "
            '"Participant_id";"Trial"'),
    ratings("empty file", lambda p: p.write_text(""), "refused", "empty file"),
    ratings("Participant_id not a number", lambda p: p.write_text(p.read_text() + "x,1,1,1,5,5,5,5,1\n"),
            "refused", "line 10: Participant_id 'x' is not an integer"),
    ratings("file absent", lambda p: p.unlink(), "refused",
            "no metadata_csv/participant_ratings.csv found"),
    # -- one participant's rows: subject 1 fails at ingest, subject 2 completes
    rows("participant without rows", lambda r: [], "participant 1 has no rows"),
    rows("fewer rows than trials", drop_last_video,
         "participant 1 has 3 rated trials but s01.dat holds 4"),
    rows("rating not a number", first_row(Valence="high"), "participant 1",
         "Valence 'high' is not a number"),
    rows("rating NaN", first_row(Liking="nan"), "Liking 'nan' is not a finite number"),
    rows("rating outside [1, 9]", first_row(Arousal="12"), "Arousal 12 is outside [1, 9]"),
    rows("Trial not a whole number", first_row(Trial="2.5"), "Trial '2.5' is not a whole number"),
    rows("duplicate Experiment_id",
         lambda r: [r[0], {**r[1], "Experiment_id": r[0]["Experiment_id"]}, *r[2:]],
         "duplicate Experiment_id"),
    # -- face_video/s01/s01_trial01.avi: subject 1's faces computed with a warning naming the file
    video("missing", lambda p: p.unlink(), "video file not found", "its segments have no faces"),
    video("empty file", lambda p: p.write_bytes(b""), "empty video file (0 bytes)"),
    video("not a video", lambda p: p.write_bytes(b"RIFF" + bytes(range(256)) * 16),
          "cannot be opened as a video"),
    video("truncated", lambda p: truncate(p, 0.33),
          "header says 70 frames but the last one cannot be decoded (truncated file?)"),
    video("zero frames", lambda p: write_video(p, 0, 10.0), "video has no frames"),
    video("shorter than the trial", lambda p: write_video(p, 15, 10.0),
          "video is 1.50 s long (15 frames at 10 fps), shorter than the 4 s trial"),
    video("wrong fps in the header (1000)", lambda p: patch_avi_rate(p, rate=1000, scale=1),
          "70 frames at 1000 fps", "shorter than the 4 s trial"),
    video("fps near zero in the header", lambda p: patch_avi_rate(p, rate=1, scale=1_000_000),
          "reports 1e-06 fps: less than one frame per 3 s segment"),
    video("2 fps: frames repeat", lambda p: every_nth_frame(p, 5, 2.0),
          "2 fps gives 6 frames per 3 s segment, fewer than the 10 sampled: frames repeat"),
    video("a face never found", lambda p: write_video(p, 70, 10.0),
          "no face found in any sampled frame", "centre crops used"),
    # -- --weights: refused before any work
    checkpoint("not Swin (resnet18)", resnet_file, "resnet18.pth", "not a Swin-tiny checkpoint",
               "171 missing keys, first: patch_embed.proj.weight", "unexpected keys, first: conv1.weight"),
    checkpoint("Swin with a missing key", lambda c: swin_file(c, "swin-1.safetensors", without("norm.weight")),
               "swin-1.safetensors", "not a Swin-tiny checkpoint", "1 missing keys, first: norm.weight"),
    checkpoint("truncated", cut_weights, "swin-cut.safetensors", "cannot read the checkpoint",
               "incomplete metadata"),
    checkpoint("empty file", lambda c: empty_file(c, "swin.pth"), "swin.pth", "empty file (0 bytes)"),
    checkpoint("NaN weights", lambda c: swin_file(c, "swin-nan.safetensors", nan_weights),
               "swin-nan.safetensors", "NaN/inf values, first: layers.1.blocks.0.mlp.fc1.weight"),
    checkpoint("not a checkpoint file", lambda c: text_file(c, "notes.txt"), "notes.txt",
               "not a checkpoint file"),
    checkpoint("path does not exist", lambda c: c.scratch / "gone.safetensors", "gone.safetensors",
               "does not exist"),
    Case("weights: --device cuda without a GPU", no_cuda, "every", "device 'cuda'",
         ("no CUDA device", "--device cpu"), stages=ALL, stage="tokens"),
    # -- parameters
    parameter("unknown subject id", {"subjects": [GOOD, 7]}, "error", "s07.dat",
              "file not found (unknown subject?)", subject=7),
    parameter("subject id out of range", {"subjects": [0, GOOD]}, "refused", "subjects",
              "must be 1..99", "got [0]"),
    parameter("unknown stage", {"stages": ["ingest", "ica"]}, "refused", "stages",
              "unknown stage(s) ['ica']"),
    parameter("band edges reversed", {"eeg": {"l_freq": 60.0}}, "refused", "l_freq",
              "must be below h_freq"),
    parameter("frames per segment the store cannot hold", {"faces": {"frames_per_segment": 5}},
              "refused", "frames_per_segment", "the store schema holds 10 frames per segment"),
    parameter("band edge at Nyquist", {"eeg": {"h_freq": 64.0}}, "every", "h_freq",
              "64.0 Hz is not below the Nyquist frequency", stage="eeg"),
    parameter("window longer than the trial", {"segment": {"window_s": 10.0, "stride_s": 10.0}},
              "every", "window_s", "does not fit in a 4.00 s trial", stage="segment"),
    # -- the store and the DEAP folder as a whole
    store_case("made by a newer schema version", newer_schema,
               f"newer schema version ({SCHEMA_VERSION + 1})", "upgrade milmer-deap"),
    store_case("made by schema version 1 (eeg kept no ICA solution)", older_schema,
               "older schema version (1", "rebuild eeg", "`milmer preprocess` into a new store"),
    store_case("a file, not a folder", store_is_a_file, "is a file, not a feature store folder"),
    store_case("another Zarr, not a feature store", store_is_another_zarr,
               "not a milmer feature store"),
    Case("DEAP folder without .dat files", no_dat_files, "refused", "/DEAP: ",
         ("no sNN.dat files found: nothing to preprocess",)),
]


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


def user_line(err: BaseException) -> str:
    """What `milmer preprocess` prints for a refused run (pydantic errors as `field: message`)."""
    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'parameters'}: {e['msg']}"
                         for e in err.errors())
    return str(err)


def assert_says(line: str | None, case: Case) -> None:
    assert line is not None and "\n" not in line, line
    assert case.names in line, f"{case.names!r} not named in: {line}"
    for words in case.words:
        assert words in line, f"{words!r} not in: {line}"


def config_of(ctx: Ctx, case: Case) -> dict[str, Any]:
    overrides = case.corrupt(ctx) or {}
    return {"deap": ctx.deap, "store": str(ctx.store), "stages": list(case.stages), **overrides}


def without_keys(shot: Snapshot, keys: set[tuple[int, str]]) -> Snapshot:
    return {k: v for k, v in shot.items() if k not in keys}


def assert_others_complete(summary: RunSummary, store: FeatureStore, bad: int) -> None:
    others = [o for o in summary.outcomes if o.subject != bad]
    assert others, summary.markdown()
    for o in others:
        assert o.status in ("computed", "skipped"), summary.markdown()
        assert store.state(o.subject, o.stage) == "committed"
        assert store.record(o.subject, o.stage).fingerprint == o.fingerprint


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_is_named_in_one_line_and_committed_data_survives(
    case: Case, baseline: Baseline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = private_copy(baseline, tmp_path, monkeypatch)
    config = config_of(ctx, case)

    if case.expect == "refused":
        before = store_bytes(ctx.store)
        with pytest.raises((ValidationError, MilmerError)) as raised:
            run_chain_inline(PreprocessConfig(**config))
        assert_says(user_line(raised.value), case)
        assert store_bytes(ctx.store) == before
        return

    if case.expect in ("error", "warning"):
        FeatureStore.open(str(ctx.store)).uncommit(GOOD, "segment")  # work left after the failure
    summary = run_chain_inline(PreprocessConfig(**config))
    outcomes = {(o.subject, o.stage.value): o for o in summary.outcomes}
    store = FeatureStore.open(str(ctx.store), mode="r")
    after = snapshot(ctx.store)

    if case.expect == "error":
        failed = outcomes[(case.subject, case.stage)]
        assert failed.status == "failed"
        assert_says(failed.error, case)
        for later in case.stages[case.stages.index(case.stage) + 1:]:
            assert outcomes[(case.subject, later)].status == "failed"
            assert outcomes[(case.subject, later)].error.startswith("not run: ")
        assert_others_complete(summary, store, bad=case.subject)
        assert outcomes[(GOOD, "segment")].status == "computed"  # it ran after the failure
        assert after == baseline.snapshot
    elif case.expect == "warning":
        assert summary.ok, summary.markdown()
        faces = outcomes[(case.subject, "faces")]
        assert faces.status == "computed"
        saying = [w for w in faces.warnings if case.names in w and all(x in w for x in case.words)]
        assert saying, faces.warnings
        assert_says(saying[0], case)
        assert all(case.names in w for w in faces.warnings)  # no other video is blamed
        extra = store.record(case.subject, "faces").extra
        listed = extra["video_problems"] + extra["video_warnings"]
        assert [p["file"] for p in listed] == [case.names] * len(listed) and listed
        assert_others_complete(summary, store, bad=case.subject)
        assert outcomes[(GOOD, "segment")].status == "computed"
        recomputed = {(case.subject, "faces")}
        assert recomputed <= after.keys()
        assert without_keys(after, recomputed) == without_keys(baseline.snapshot, recomputed)
    else:  # every subject fails at this stage; the stages before it stay committed
        failing = [o for o in summary.outcomes if o.stage.value == case.stage]
        assert {o.subject for o in failing} == {BAD, GOOD}
        for o in failing:
            assert o.status == "failed"
            assert_says(o.error, case)
        before_it = case.stages[: case.stages.index(case.stage)]
        assert all(outcomes[(s, st)].status == "skipped" for s in (BAD, GOOD) for st in before_it)
        assert after == baseline.snapshot


def test_the_table_has_at_least_twenty_distinct_cases_of_every_input_kind() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 20
    kinds = {c.name.split(":")[0] for c in CASES}
    assert {"dat", "csv", "video", "weights", "parameter", "store"} <= kinds


# --------------------------------------------------------------------------------------------
# The same through `milmer preprocess`: exit code and the one line the user reads
# --------------------------------------------------------------------------------------------


def milmer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("milmer")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, env=env)


def case_named(name: str) -> Case:
    (case,) = [c for c in CASES if c.name == name]
    return case


@pytest.mark.parametrize("name", ["store: made by a newer schema version",
                                  "weights: not Swin (resnet18)"])
def test_cli_refuses_a_folder_wide_problem_before_any_work(
    name: str, baseline: Baseline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = case_named(name)
    ctx = private_copy(baseline, tmp_path, monkeypatch)
    config = config_of(ctx, case)
    before = store_bytes(ctx.store)
    args = ["preprocess", "--deap", str(ctx.deap), "--store", str(ctx.store),
            "--stages", ",".join(config["stages"])]
    if "weights" in config:
        args += ["--weights", config["weights"]]
    result = milmer(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = [l for l in result.stderr.splitlines() if l.strip()]
    assert line.startswith("error: ")
    assert_says(line, case)
    assert "temporary server" not in result.stdout + result.stderr  # no flow was started
    assert store_bytes(ctx.store) == before


def test_cli_names_a_truncated_dat_and_the_other_subject_completes(
    baseline: Baseline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    prefect_api: tuple[str, dict[str, str]],
) -> None:
    case = case_named("dat: truncated")
    ctx = private_copy(baseline, tmp_path, monkeypatch)
    config = config_of(ctx, case)
    FeatureStore.open(str(ctx.store)).uncommit(GOOD, "segment")
    result = milmer("preprocess", "--deap", str(ctx.deap), "--store", str(ctx.store),
                    "--stages", ",".join(config["stages"]), "--workers", "1",
                    env=prefect_api[1])  # the session's Prefect API, not a temporary one
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [l for l in result.stderr.splitlines() if l.startswith("failed ")]
    assert failed[0].startswith("failed s01 ingest: ") and len(failed) == 3, failed
    assert_says(failed[0], case)
    assert failed[1:] == ["failed s01 eeg: not run: 'ingest' failed",
                          "failed s01 segment: not run: 'eeg' failed"]
    assert "1 computed, 2 skipped, 3 failed" in result.stdout
    store = FeatureStore.open(str(ctx.store), mode="r")
    assert all(store.state(GOOD, stage) == "committed" for stage in EEG)
    assert snapshot(ctx.store) == baseline.snapshot
