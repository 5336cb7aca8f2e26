"""Face stage: frame sampling, decoding, BlazeFace detection on the synthetic face, fallbacks,
bad videos, the model file, center padding, and the stage in the store and the flow."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from pipeline.readers import deap_format as fmt
from pipeline.weights import face_model
from pipeline.readers.deap import load_ratings
from pipeline.errors import FaceModelError
from pipeline.stages.faces.detect import (
    center_pad,
    crop_region,
    faces_for_subject,
    fallback_box,
    fill_from_nearest,
    sample_frame_indices,
    subject_faces,
)
from pipeline.readers.face_truth import face_truth_dir
from pipeline.stages.faces.params import FacesParams
from pipeline.synth import SynthParams, face_truth, write_synthetic_deap
from pipeline.synth.expression import EXPRESSIVE
from pipeline.readers.video import TrialVideo, find_trial_videos, probe_video, read_frames
from store_schema.engine.store import FeatureStore
from store_schema.engine.verify import verify_store

FACE = SynthParams(subjects=1, trials=2, seconds=6, fps=25.0, seed=0)
"""Two 9 s trials at 25 fps (generator v2 ``easy``): two 3 s segments each, two occlusions per
trial. Seed 0 because its occluded sampled frames are clean. BlazeFace (min_confidence 0.7)
has a false positive on the generator's occluder in both generator versions: on a fully
occluded frame, a large box (350-440 px wide) elsewhere in the frame (IoU with the hidden face
<= 0.04), scored up to 0.82. Measured on frames rendered without the codec (seeds 0-11,
2 subjects x 8 trials x 12 s at 25 fps): 26 of 2877 occluded frames at >= 0.7 on v2 ``easy``,
31 on v1; seed 3 here puts one on a sampled frame, at 0.70. No threshold of the stage
separates it with margin on those frames: visible faces score down to 0.59 on v2 (0.1 %
quantile 0.79), and the grey-level std of their boxes (>= 28.6 on v2, >= 32.2 on v1) overlaps
that of the false boxes scored >= 0.7 (up to 21.6 on v2, 32.2 on v1). So this test checks how
the stage handles frames without a face, on frames the detector gets right; it does not
measure the detector's false-positive rate (issue 31)."""

ALL_STAGES = ["ingest", "eeg", "segment", "faces"]


@pytest.fixture(scope="session")
def model() -> Path:
    try:
        return face_model.resolve_face_model()[0]
    except FaceModelError as err:
        pytest.fail(f"the face model is not provisioned: {err}")


def write(out: Path, params: SynthParams) -> Path:
    write_synthetic_deap(out=out, params=params)
    return out


@pytest.fixture(scope="module")
def face_deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("faces") / "DEAP", FACE)


@pytest.fixture(scope="module")
def mjpg_deap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("mjpg") / "DEAP",
                 SynthParams(subjects=1, trials=1, seconds=3, fps=10.0, codec="MJPG"))


def segment_table(deap: Path, params: SynthParams, subject: int = 1):  # noqa: ANN201
    """(videos, trial_index, start_s) as the face stage gets them, for 3 s segments."""
    rows = load_ratings(deap / fmt.METADATA_DIR / fmt.RATINGS_FILE).by_subject[subject]
    pairs = sorted((r.experiment_id - 1, r.trial) for r in rows)  # videos[i]: trial index i
    videos = find_trial_videos(video_dir=deap / fmt.VIDEO_DIR, subject=subject, trials=pairs,
                               trial_seconds=params.seconds)
    per_trial = params.seconds // 3
    trial_index = np.repeat(np.arange(params.trials), per_trial)
    start_s = np.tile(3.0 * np.arange(per_trial), params.trials)
    return videos, trial_index, start_s


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


# ------------------------------------------------------------------------------------------
# Detection quality on the synthetic face


@pytest.fixture(scope="module")
def detected(face_deap: Path, model: Path):  # noqa: ANN201
    videos, trial_index, start_s = segment_table(face_deap, FACE)
    arrays, extra = faces_for_subject(videos=videos, trial_index=trial_index, start_s=start_s,
                                      window_s=3.0, params=FacesParams(), model_path=model)
    truth_boxes, occluded, sampled = [], [], []
    for row, trial in enumerate(trial_index):
        truth = face_truth(subject=1, experiment_id=int(trial) + 1, params=FACE)
        video = videos[int(trial)]
        idx = sample_frame_indices(start_s=start_s[row : row + 1], window_s=3.0, fps=FACE.fps,
                                   offset_s=video.offset_s, frame_count=truth.n_frames)[0]
        truth_boxes.append(truth.boxes[idx])
        occluded.append(truth.occluded[idx])
        sampled.append(idx)
    return arrays, extra, np.array(truth_boxes), np.array(occluded), np.array(sampled)


def test_the_visible_face_is_found_in_95_percent_of_frames_with_iou_over_half(detected) -> None:
    arrays, extra, truth, occluded, _ = detected
    visible = ~occluded
    hits = arrays["detected"] & (iou(arrays["boxes"].astype(float), truth) >= 0.5)
    assert hits[visible].mean() >= 0.95, hits[visible].mean()
    assert arrays["has_video"].all() and extra["video_problems"] == []
    assert (arrays["scores"][arrays["detected"]] >= 0.7).all()
    assert extra["trials"][0]["video_start"] == "baseline"


def test_frame_index_records_the_sampled_frames(detected) -> None:
    arrays, extra, _, _, sampled = detected
    np.testing.assert_array_equal(arrays["frame_index"], sampled)
    assert [t["offset_s"] for t in extra["trials"]] == [3.0] * FACE.trials  # baseline-start videos


def test_a_synthetic_folder_s_face_truth_marks_the_planted_frames(tmp_path: Path, model: Path) -> None:
    """v2 folders keep per-frame truth beside the videos: the stage records which sampled frames
    are expressive (to score MIL), and a video without its truth file records why there are none."""
    params = SynthParams(subjects=1, trials=2, seconds=6, fps=10.0, seed=4, difficulty="paper")
    deap = write(tmp_path / "DEAP", params)
    videos, trial_index, start_s = segment_table(deap, params)
    rows = load_ratings(deap / fmt.METADATA_DIR / fmt.RATINGS_FILE).by_subject[1]
    presentation = np.array([r.trial for r in sorted(rows, key=lambda r: r.experiment_id)])[trial_index]
    run = dict(video_dir=deap / fmt.VIDEO_DIR, subject=1, trial_index=trial_index,
               presentation_trial=presentation, start_s=start_s, trial_seconds=float(params.seconds),
               window_s=3.0, params=FacesParams(), model_path=model)
    arrays, extra = subject_faces(**run, truth_dir=face_truth_dir(deap))
    want = []
    for row, trial in enumerate(trial_index):
        truth = face_truth(subject=1, experiment_id=int(trial) + 1, params=params)
        expressive = np.abs(truth.expression).max(axis=1) > EXPRESSIVE
        want.append([int(k) for k in np.flatnonzero(expressive[arrays["frame_index"][row]])])
    assert extra["planted_frames"] == want and any(want) and not all(len(w) == 10 for w in want)
    _, plain = subject_faces(**run)  # real DEAP: no truth folder, nothing recorded
    assert "planted_frames" not in plain
    (face_truth_dir(deap) / "s01" / f"{Path(videos[0].file).stem}.json").unlink()
    _, partial = subject_faces(**run, truth_dir=face_truth_dir(deap))
    assert "planted_frames" not in partial and videos[0].file in partial["planted_frames_missing"]


def test_occluded_frames_are_not_detected_and_borrow_the_nearest_box_in_time(detected) -> None:
    arrays, _, _, occluded, sampled = detected
    assert occluded.sum() >= 2, "the synthetic occlusions should fall on sampled frames"
    assert not arrays["detected"][occluded].any()
    assert (arrays["scores"][occluded] == 0).all()
    # Per trial (2 segments each), the box of each occluded frame is the box of the nearest
    # detected sampled frame of the same trial.
    for trial in range(FACE.trials):
        rows = slice(2 * trial, 2 * trial + 2)
        idx, found = sampled[rows].ravel(), arrays["detected"][rows].ravel()
        boxes = arrays["boxes"][rows].reshape(-1, 4)
        for k in np.flatnonzero(~found):
            distance = np.where(found, np.abs(idx - idx[k]), np.iinfo(np.int64).max)
            np.testing.assert_array_equal(boxes[k], boxes[np.argmin(distance)])


def test_crops_are_the_center_padded_box_with_the_margin(detected, face_deap: Path) -> None:
    arrays, _, _, _, sampled = detected
    videos, _, _ = segment_table(face_deap, FACE)
    frame = read_frames(videos[0].path, [int(sampled[0, 0])], fps=FACE.fps)[int(sampled[0, 0])]
    x0, y0, x1, y1 = crop_region(tuple(arrays["boxes"][0, 0]), margin=0.1, width=720, height=576)
    np.testing.assert_array_equal(arrays["crops"][0, 0], center_pad(frame[y0:y1, x0:x1], size=224))


def test_a_trial_without_any_face_falls_back_to_the_centre_crop(tmp_path: Path, model: Path) -> None:
    path = tmp_path / "s01_trial01.avi"
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (720, 576))
    frame = np.full((576, 720, 3), 128, np.uint8)
    frame[:, 72:648] = (40, 160, 200)  # the centre square, BGR
    for _ in range(60):
        writer.write(frame)
    writer.release()
    video = TrialVideo(trial_index=0, file=path.name, path=path, video=probe_video(path),
                       video_start="baseline")
    arrays, extra = faces_for_subject(videos=[video], trial_index=np.array([0]),
                                      start_s=np.array([0.0]), window_s=3.0, params=FacesParams(),
                                      model_path=model)
    assert not arrays["detected"].any() and arrays["has_video"].all()
    centre = fallback_box(width=720, height=576, margin=0.1)
    np.testing.assert_allclose(arrays["boxes"][0], np.tile(centre, (10, 1)), rtol=1e-6)
    crop = arrays["crops"][0, 0].astype(int)
    assert np.abs(crop - [200, 160, 40]).max() <= 3, "the crop is the (square) centre of the frame, RGB"
    assert extra["center_fallback"] == 10 and extra["detected"] == 0


# ------------------------------------------------------------------------------------------
# Frame sampling and decoding


@settings(max_examples=300, deadline=None)
@given(
    segment=st.integers(0, 19),
    window_s=st.floats(0.5, 10.0),
    fps=st.floats(1.0, 120.0),
    baseline=st.booleans(),
    n=st.integers(1, 12),
)
def test_sampled_frames_lie_in_their_segment_and_increase(segment, window_s, fps, baseline, n) -> None:
    start = segment * window_s
    offset = 3.0 if baseline else 0.0
    frame_count = int(np.ceil((offset + start + window_s) * fps)) + 5
    idx = sample_frame_indices(start_s=np.array([start]), window_s=window_s, fps=fps,
                               offset_s=offset, frame_count=frame_count, n=n)[0]
    assert idx.shape == (n,) and idx.dtype == np.int64
    seg_start, seg_end = offset + start, offset + start + window_s
    # frame i is on screen during [i / fps, (i + 1) / fps): it overlaps the segment
    assert ((idx + 1) / fps > seg_start).all() and (idx / fps < seg_end).all()
    assert (np.diff(idx) >= 0).all()
    if window_s / n * fps >= 1.0 + 1e-9:
        assert (np.diff(idx) > 0).all()


def test_sampling_rule_on_a_deap_shaped_video() -> None:
    # 25 fps, video from the baseline: segment 0 covers video seconds 3..6, centres 3.15, 3.45 ...
    idx = sample_frame_indices(start_s=np.array([0.0, 57.0]), window_s=3.0, fps=25.0, offset_s=3.0,
                               frame_count=63 * 25)
    np.testing.assert_array_equal(idx[0], np.floor((3.0 + 0.15 + 0.3 * np.arange(10)) * 25 + 1e-6))
    assert idx[1, -1] == 1571 and idx.shape == (2, 10)
    clipped = sample_frame_indices(start_s=np.array([57.0]), window_s=3.0, fps=25.0, offset_s=3.0,
                                   frame_count=1560)
    assert clipped.max() == 1559


@pytest.mark.parametrize("codec, seek", [("MJPG", True), ("MJPG", False), ("mp4v", True)])
def test_decoding_only_the_wanted_frames_equals_opencv(codec: str, seek: bool, face_deap: Path,
                                                       mjpg_deap: Path) -> None:
    deap = mjpg_deap if codec == "MJPG" else face_deap
    path = next((deap / fmt.VIDEO_DIR / "s01").glob("*.avi"))
    capture = cv2.VideoCapture(str(path))
    count, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    wanted = sorted(np.random.default_rng(0).choice(count, 9, replace=False).tolist()) + [count - 1]
    stats: dict = {}
    frames = read_frames(path, wanted, fps=fps, stats=stats, seek=seek)
    assert sorted(frames) == wanted
    for i in wanted:
        capture.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, bgr = capture.read()
        assert ok
        np.testing.assert_array_equal(frames[i], bgr[:, :, ::-1], err_msg=f"frame {i}")
    capture.release()
    if codec == "MJPG":  # intra-only: every other packet is demuxed but never decoded
        assert stats == {"intra_only": True, "decoded": len(wanted)}
    else:
        assert stats["intra_only"] is False and stats["decoded"] == count


def test_nearest_detected_frame_prefers_the_earlier_on_a_tie() -> None:
    indices = np.array([0, 3, 6, 9, 12])
    found = np.array([False, True, False, True, False])
    np.testing.assert_array_equal(fill_from_nearest(indices, found), [1, 1, 1, 3, 3])
    assert fill_from_nearest(indices, np.zeros(5, bool)) is None


# ------------------------------------------------------------------------------------------
# Center padding


@pytest.mark.parametrize("h, w", [(50, 100), (300, 120), (224, 224), (7, 3)])
def test_center_padding_keeps_the_aspect_and_centres_on_black(h: int, w: int) -> None:
    image = np.full((h, w, 3), 200, np.uint8)
    out = center_pad(image, size=224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    rows, cols = np.flatnonzero(out[:, :, 0].any(axis=1)), np.flatnonzero(out[:, :, 0].any(axis=0))
    content_h, content_w = len(rows), len(cols)
    assert max(content_h, content_w) == 224
    assert abs(content_w / content_h - w / h) <= 2 / min(content_h, content_w) * (w / h) + 1e-9
    assert abs(rows[0] - (223 - rows[-1])) <= 1 and abs(cols[0] - (223 - cols[-1])) <= 1
    assert (out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] == 200).all()
    assert out.sum() == 200 * 3 * content_h * content_w  # all the rest is black


def test_the_crop_region_grows_the_box_and_stays_inside_the_frame() -> None:
    assert crop_region((100, 100, 50, 80), margin=0.1, width=720, height=576) == (95, 92, 155, 188)
    assert crop_region((-20, 500, 100, 100), margin=0.1, width=720, height=576) == (0, 490, 90, 576)
    x0, y0, x1, y1 = crop_region(fallback_box(width=720, height=576, margin=0.1), margin=0.1,
                                 width=720, height=576)
    assert (x0, y0, x1, y1) == (72, 0, 648, 576)


# ------------------------------------------------------------------------------------------
# The model file


def test_a_missing_model_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FaceModelError, match=r"not found \(the given model path\).*make setup"):
        face_model.resolve_face_model(tmp_path / "nope.tflite")
    monkeypatch.setenv("MILMER_FACE_MODEL", str(tmp_path / "env.tflite"))
    with pytest.raises(FaceModelError, match=r"env\.tflite: .*\$MILMER_FACE_MODEL.*pipeline.weights.face_model"):
        face_model.resolve_face_model()
    monkeypatch.delenv("MILMER_FACE_MODEL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FaceModelError, match="model cache"):
        face_model.resolve_face_model()


def test_a_model_with_the_wrong_hash_is_refused(tmp_path: Path, model: Path) -> None:
    wrong = tmp_path / "face_detection_short_range.tflite"
    data = bytearray(model.read_bytes())
    data[1000] ^= 0xFF
    wrong.write_bytes(bytes(data))
    with pytest.raises(FaceModelError, match=f"expected {face_model.MODEL_SHA256[:16]}"):
        face_model.resolve_face_model(wrong)
    path, sha = face_model.resolve_face_model(model)
    assert sha == face_model.MODEL_SHA256 == hashlib.sha256(model.read_bytes()).hexdigest()


def test_fetching_an_up_to_date_model_downloads_nothing(tmp_path: Path, model: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "m.tflite"
    shutil.copy(model, dest)

    def no_download(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("must not download")

    monkeypatch.setattr(face_model.subprocess, "run", no_download)
    assert face_model.fetch_face_model(dest, quiet=True) == dest


# ------------------------------------------------------------------------------------------
# The stage in the store and the flow


def run(deap: Path, store: Path, **overrides) -> RunSummary:
    overrides.setdefault("stages", ALL_STAGES)
    overrides.setdefault("subjects", [1])
    return run_chain_inline(PreprocessConfig(deap=deap, store=str(store), **overrides))


def statuses(summary: RunSummary) -> dict[str, str]:
    return {o.stage.value: o.status for o in summary.outcomes}


@pytest.fixture(scope="module")
def built(small_deap_master: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Subject 1 of the small dataset through ingest, eeg, segment and faces."""
    root = tmp_path_factory.mktemp("faces-flow")
    deap = root / "DEAP"
    shutil.copytree(small_deap_master, deap)
    store = root / "store.zarr"
    first = run(deap, store)
    assert statuses(first) == dict.fromkeys(ALL_STAGES, "computed"), first.markdown()
    return deap, store


@pytest.fixture()
def private(built, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the built DEAP folder and store, free to change."""
    deap, store = tmp_path / "DEAP", tmp_path / "store.zarr"
    shutil.copytree(built[0], deap, copy_function=shutil.copy2)
    shutil.copytree(built[1], store)
    return deap, store


def test_the_flow_writes_a_verified_faces_stage_and_a_rerun_skips_it(built) -> None:
    deap, store_path = built
    store = FeatureStore.open(str(store_path), mode="r")
    assert verify_store(store) == []
    arrays = store.read_stage(1, "faces")
    n_seg = len(store.read(1, "segment", "trial_index"))
    assert arrays["crops"].shape == (n_seg, 10, 224, 224, 3) and arrays["crops"].dtype == np.uint8
    assert arrays["has_video"].all() and arrays["detected"].mean() >= 0.8
    record = store.record(1, "faces")
    assert set(record.libraries) == {"mediapipe", "opencv-contrib-python", "av", "numpy"}
    assert record.inputs["model"] == f"sha256:{face_model.MODEL_SHA256}"
    assert record.params["model_path"] is None  # the path is not part of the fingerprint
    assert sorted(k for k in record.inputs if k.startswith("video:")) == [
        f"video:s01_trial{t:02d}.avi" for t in range(1, 5)]
    assert statuses(run(deap, store_path)) == dict.fromkeys(ALL_STAGES, "skipped")


def test_changing_min_confidence_recomputes_faces_only(private) -> None:
    deap, store = private
    changed = run(deap, store, faces={"min_confidence": 0.8})
    assert statuses(changed) == {"ingest": "skipped", "eeg": "skipped", "segment": "skipped",
                                 "faces": "computed"}


def test_the_same_model_elsewhere_is_the_same_input(private, model: Path, tmp_path: Path) -> None:
    deap, store = private
    copy = tmp_path / "elsewhere" / "blazeface.tflite"
    copy.parent.mkdir()
    shutil.copy(model, copy)
    assert statuses(run(deap, store, faces={"model_path": str(copy)}))["faces"] == "skipped"
    missing = run(deap, store, faces={"model_path": str(tmp_path / "gone.tflite")})
    assert statuses(missing)["faces"] == "failed"
    assert "gone.tflite: face detection model not found" in missing.failures()[0].error
    assert "make setup" in missing.failures()[0].error


def test_bad_videos_affect_only_their_trial_and_are_named(private) -> None:
    deap, store_path = private
    folder = deap / fmt.VIDEO_DIR / "s01"
    truncated, corrupt, missing = (folder / fmt.video_name(1, t) for t in (1, 2, 3))
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    missing.unlink()

    summary = run(deap, store_path)
    assert summary.ok and statuses(summary)["faces"] == "computed"
    assert statuses(summary)["eeg"] == "skipped"
    store = FeatureStore.open(str(store_path), mode="r")
    presentation = store.read(1, "segment", "presentation_trial")
    has_video = store.read(1, "faces", "has_video")
    np.testing.assert_array_equal(has_video, presentation == 4)
    bad = ~has_video
    assert not store.read(1, "faces", "detected")[bad].any()
    assert not store.read(1, "faces", "crops")[bad].any()
    problems = {p["file"]: p["reason"] for p in store.record(1, "faces").extra["video_problems"]}
    assert set(problems) == {truncated.name, corrupt.name, missing.name}
    assert problems[missing.name] == "video file not found"
    (outcome,) = [o for o in summary.outcomes if o.stage.value == "faces"]
    for path in (truncated, corrupt, missing):
        assert any(str(path) in w for w in outcome.warnings), outcome.warnings
        assert str(path) in summary.markdown()


def test_a_faces_config_the_store_cannot_hold_is_rejected(small_deap_master: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="10 frames per segment"):
        PreprocessConfig(deap=small_deap_master, store=str(tmp_path / "s.zarr"),
                         faces={"frames_per_segment": 5})


def test_store_faces_writes_a_contact_sheet(built, tmp_path: Path) -> None:
    from flows.cli import app

    _, store = built
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(app, ["store", "faces", str(store), "--subject", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    n_seg = len(FeatureStore.open(str(store), mode="r").read(1, "segment", "trial_index"))
    assert image.shape[0] > n_seg * 112 and image.shape[1] > 10 * 112
    absent = CliRunner().invoke(app, ["store", "faces", str(store), "--subject", "2"])
    assert absent.exit_code == 2 and "no committed faces stage" in absent.output


def test_a_new_eeg_filter_keeps_the_faces_because_the_windows_did_not_change(private) -> None:
    deap, store = private
    rerun = run(deap, store, eeg={"l_freq": 2.0})
    assert statuses(rerun) == {"ingest": "skipped", "eeg": "computed", "segment": "computed",
                               "faces": "skipped"}
    assert verify_store(FeatureStore.open(str(store), mode="r")) == []
    # new windows do change which frames are sampled
    windows = run(deap, store, eeg={"l_freq": 2.0}, segment={"window_s": 2.0, "stride_s": 2.0})
    assert statuses(windows)["faces"] == "computed"
