"""Reading a DEAP folder: layout discovery, trial/video pairing, and every bad input named."""

from __future__ import annotations

import csv
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.readers import deap_format as fmt
from pipeline.readers.deap import find_layout, load_dat, load_subject, scan_deap
from pipeline.errors import DeapInputError
from tests.conftest import SMALL

# --------------------------------------------------------------------------------------------
# Helpers that corrupt a copy of the small synthetic dataset
# --------------------------------------------------------------------------------------------


def dat_path(root: Path, subject: int) -> Path:
    return root / fmt.PREPROCESSED_DIR / fmt.dat_name(subject)


def ratings_path(root: Path) -> Path:
    return root / fmt.METADATA_DIR / fmt.RATINGS_FILE


def video_path(root: Path, subject: int, trial: int) -> Path:
    return root / fmt.VIDEO_DIR / fmt.subject_tag(subject) / fmt.video_name(subject, trial)


def rewrite_dat(root: Path, subject: int, change: Callable[[dict], object]) -> None:
    path = dat_path(root, subject)
    with path.open("rb") as f:
        obj = pickle.load(f, encoding="latin1")
    with path.open("wb") as f:
        pickle.dump(change(obj), f, protocol=2)


def rewrite_ratings(root: Path, change: Callable[[list[dict]], list[dict]], columns=None) -> None:
    path = ratings_path(root)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows = change(rows)
    columns = columns or list(fmt.RATINGS_COLUMNS)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore",
                                quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        writer.writerows(rows)


def set_nan(obj: dict) -> dict:
    obj["data"][1, 3, 500] = np.nan
    return obj


def set_rating(obj: dict) -> dict:
    obj["labels"][2, 1] = 9.5
    return obj


def drop_labels(obj: dict) -> dict:
    return {"data": obj["data"], "ratings": obj["labels"]}


def wrong_channels(obj: dict) -> dict:
    return {"data": obj["data"][:, :32], "labels": obj["labels"]}


def wrong_label_rows(obj: dict) -> dict:
    return {"data": obj["data"], "labels": obj["labels"][:-1]}


def int_data(obj: dict) -> dict:
    return {"data": obj["data"].astype(np.int32), "labels": obj["labels"]}


def participant_rows(subject: int, change: Callable[[list[dict]], list[dict]]):
    def apply(rows: list[dict]) -> list[dict]:
        mine = [r for r in rows if int(r["Participant_id"]) == subject]
        others = [r for r in rows if int(r["Participant_id"]) != subject]
        return others + change(mine)
    return apply


def duplicate_trial(rows: list[dict]) -> list[dict]:
    rows[1]["Trial"] = rows[0]["Trial"]
    return rows


def experiment_out_of_range(rows: list[dict]) -> list[dict]:
    rows[0]["Experiment_id"] = "17"
    return rows


def write_short_video(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (720, 576))
    for _ in range(15):  # 1.5 s, the trial is 4 s
        writer.write(np.zeros((576, 720, 3), np.uint8))
    writer.release()


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@dataclass(frozen=True)
class Corruption:
    name: str
    corrupt: Callable[[Path], None]
    file: str  # file name the message must name
    message: str  # substring of the message
    subject_usable: bool = False  # a video problem leaves the subject usable (faces skip a trial)


# Subject 2 is corrupted; subject 1 must stay usable in every case.
CORRUPTIONS = [
    Corruption("dat truncated", lambda r: truncate(dat_path(r, 2), 0.5), "s02.dat", "truncated"),
    Corruption("dat empty", lambda r: dat_path(r, 2).write_bytes(b""), "s02.dat", "empty file"),
    Corruption("dat not a pickle", lambda r: dat_path(r, 2).write_text("MATLAB 5.0 MAT-file"),
               "s02.dat", "not a DEAP pickle"),
    Corruption("dat pickle of a list",
               lambda r: dat_path(r, 2).write_bytes(pickle.dumps([1, 2, 3], protocol=2)),
               "s02.dat", "expected a dict"),
    Corruption("dat wrong keys", lambda r: rewrite_dat(r, 2, drop_labels), "s02.dat",
               "missing key(s) 'labels'"),
    Corruption("dat wrong channel count", lambda r: rewrite_dat(r, 2, wrong_channels), "s02.dat",
               "expected (trials, 40 channels, samples)"),
    Corruption("dat labels rows", lambda r: rewrite_dat(r, 2, wrong_label_rows), "s02.dat",
               "'labels' has shape (3, 4)"),
    Corruption("dat integer dtype", lambda r: rewrite_dat(r, 2, int_data), "s02.dat",
               "dtype int32, expected floating point"),
    Corruption("dat NaN", lambda r: rewrite_dat(r, 2, set_nan), "s02.dat",
               "NaN/inf value(s), first at trial 2, channel F7, sample 500"),
    Corruption("dat rating out of range", lambda r: rewrite_dat(r, 2, set_rating), "s02.dat",
               "outside [1, 9], first: Experiment_id 3 arousal = 9.5"),
    Corruption("dat code execution refused",
               lambda r: dat_path(r, 2).write_bytes(
                   b"cos\nsystem\n(S'echo pwned'\ntR."), "s02.dat", "refusing to load os.system"),
    Corruption("csv participant missing",
               lambda r: rewrite_ratings(r, participant_rows(2, lambda rows: [])),
               "participant_ratings.csv", "participant 2 has no rows"),
    Corruption("csv duplicate trial",
               lambda r: rewrite_ratings(r, participant_rows(2, duplicate_trial)),
               "participant_ratings.csv", "duplicate Trial"),
    Corruption("csv experiment id not a permutation",
               lambda r: rewrite_ratings(r, participant_rows(2, experiment_out_of_range)),
               "participant_ratings.csv", "Experiment_id values [17] are not a permutation of 1..4"),
    Corruption("csv fewer rows than trials",
               lambda r: rewrite_ratings(r, participant_rows(2, lambda rows: rows[:3])),
               "participant_ratings.csv", "3 rated trials but s02.dat holds 4"),
    Corruption("csv rating not a number",
               lambda r: rewrite_ratings(r, participant_rows(2, lambda rows: [
                   {**rows[0], "Valence": "high"}, *rows[1:]])),
               "participant_ratings.csv", "Valence 'high' is not a number"),
    Corruption("video missing", lambda r: video_path(r, 2, 3).unlink(), "s02",
               "1 of 4 videos missing: s02_trial03.avi", subject_usable=True),
    Corruption("video empty", lambda r: video_path(r, 2, 2).write_bytes(b""), "s02_trial02.avi",
               "empty video file", subject_usable=True),
    Corruption("video unreadable", lambda r: video_path(r, 2, 2).write_bytes(b"\0" * 4096),
               "s02_trial02.avi", "cannot be opened as a video", subject_usable=True),
    Corruption("video truncated", lambda r: truncate(video_path(r, 2, 1), 0.4), "s02_trial01.avi",
               "cannot be decoded", subject_usable=True),
    Corruption("video shorter than trial", lambda r: write_short_video(video_path(r, 2, 4)),
               "s02_trial04.avi", "shorter than the 4 s trial", subject_usable=True),
]


@pytest.mark.parametrize("case", CORRUPTIONS, ids=[c.name for c in CORRUPTIONS])
def test_bad_input_is_named_and_other_subjects_are_read(small_deap: Path, case: Corruption) -> None:
    case.corrupt(small_deap)
    scan = scan_deap(small_deap)

    subject2 = next(s for s in scan.subjects if s.subject == 2)
    problems = [p for p in scan.all_problems() if p.subject == 2]
    matching = [p for p in problems if case.message in p.message]
    assert matching, f"no problem mentions {case.message!r}: {[str(p) for p in problems]}"
    line = str(matching[0])
    assert case.file in line and "\n" not in line
    assert subject2.usable is case.subject_usable
    assert scan.usable_subjects[0] == 1 and scan.usable  # one bad subject never stops the others


def test_missing_dat_is_an_error_when_asked_for_and_a_warning_otherwise(small_deap: Path) -> None:
    dat_path(small_deap, 2).unlink()
    asked = scan_deap(small_deap, subjects=[1, 2])
    (problem,) = [p for p in asked.all_problems() if p.subject == 2]
    assert problem.severity == "error" and "no s02.dat (unknown subject?)" in str(problem)
    assert asked.usable_subjects == [1]
    found = scan_deap(small_deap)
    assert [s.subject for s in found.subjects] == [1]
    assert any(p.severity == "warning" and "participant(s) 2 have ratings but no .dat file" in p.message
               for p in found.problems)


def test_ratings_csv_missing_column_is_a_folder_wide_error(small_deap: Path) -> None:
    columns = [c for c in fmt.RATINGS_COLUMNS if c != "Experiment_id"]
    rewrite_ratings(small_deap, lambda rows: rows, columns=columns)
    scan = scan_deap(small_deap)
    assert not scan.usable
    assert any("missing column(s) Experiment_id" in p.message and p.path.name == fmt.RATINGS_FILE
               for p in scan.problems)


def test_load_subject_raises_with_file_and_subject(small_deap: Path) -> None:
    rewrite_dat(small_deap, 2, set_nan)
    with pytest.raises(DeapInputError, match=r"s02\.dat: 'data' has 1 NaN/inf") as info:
        load_subject(small_deap, 2)
    assert info.value.subject == 2
    assert load_subject(small_deap, 1).dat.data.shape == (4, 40, 128 * 7)


def test_load_dat_reads_numpy_1_pickles_and_names_a_header_only_file(tmp_path: Path) -> None:
    # DEAP's files were written by Python 2 with numpy 1: they name numpy.core, not numpy._core.
    data = np.zeros((1, 40, 128 * 6))
    legacy = pickle.dumps({"data": data, "labels": np.full((1, 4), 5.0)}, protocol=2)
    legacy = legacy.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    (tmp_path / "s01.dat").write_bytes(legacy)
    assert load_dat(tmp_path / "s01.dat").data.shape == (1, 40, 768)

    (tmp_path / "s02.dat").write_bytes(b"\x80\x02")
    with pytest.raises(DeapInputError, match=r"s02\.dat: truncated pickle"):
        load_dat(tmp_path / "s02.dat")


# --------------------------------------------------------------------------------------------
# What a good folder gives
# --------------------------------------------------------------------------------------------


def test_scan_pairs_every_video_through_the_ratings_csv(small_deap_master: Path) -> None:
    scan = scan_deap(small_deap_master)
    assert scan.usable and scan.usable_subjects == [1, 2]
    assert [p for p in scan.all_problems() if p.severity == "error"] == []
    with ratings_path(small_deap_master).open(newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    for info in scan.subjects:
        assert (info.n_trials, info.n_channels, info.n_samples) == (4, 40, 128 * (3 + SMALL.seconds))
        assert [t.experiment_id for t in info.trials] == [1, 2, 3, 4]  # .dat order
        for t in info.trials:
            row = next(r for r in rows if int(r["Participant_id"]) == info.subject
                       and int(r["Experiment_id"]) == t.experiment_id)
            assert t.trial == int(row["Trial"])
            assert t.video_file == f"s{info.subject:02d}_trial{int(row['Trial']):02d}.avi"
            assert t.video is not None and t.video.path.name == t.video_file
            assert t.video.fps == pytest.approx(SMALL.fps)
            assert (t.video.width, t.video.height) == (720, 576)
            assert t.video_start == "baseline"


def test_video_alignment_is_decided_from_duration(tmp_path: Path) -> None:
    from pipeline.synth import SynthParams, write_synthetic_deap

    root = tmp_path / "DEAP"
    write_synthetic_deap(out=root, params=SynthParams(subjects=1, trials=2, seconds=4, fps=10.0,
                                           video_start="playback"))
    scan = scan_deap(root)
    assert [t.video_start for t in scan.subjects[0].trials] == ["playback", "playback"]
    # An explicit override wins over the guess, but not over the length check.
    forced = scan_deap(root, video_start="baseline")
    problems = [p.message for p in forced.all_problems()]
    assert any("shorter than the 4 s trial plus its 3 s baseline" in m for m in problems)


def write_video(path: Path, *, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (720, 576))
    for _ in range(frames):
        writer.write(np.zeros((576, 720, 3), np.uint8))
    writer.release()


def test_a_video_of_unexpected_duration_is_warned_with_its_duration(small_deap: Path) -> None:
    # Trials are 4 s: a video should last about 7 s (from the baseline) or 4 s (from playback).
    odd = video_path(small_deap, 1, 2)
    write_video(odd, frames=55, fps=10.0)
    scan = scan_deap(small_deap)
    warnings = [p for p in scan.all_problems() if p.severity == "warning" and p.path == odd]
    (warning,) = warnings
    assert "5.50 s long" in warning.message and "neither about 7 s" in warning.message
    assert "about 4 s" in warning.message and "taken to start at the playback" in warning.message
    assert scan.subjects[0].usable  # a caveat, not an error
    others = [p for p in scan.all_problems() if p.path != odd and "neither about" in p.message]
    assert others == []  # the generator's own videos last exactly 3 + 4 s


def test_the_scan_lists_each_videos_duration_fps_frames_and_start(small_deap_master: Path) -> None:
    report = scan_deap(small_deap_master).model_dump(mode="json")
    trials = [t for s in report["subjects"] for t in s["trials"]]
    assert len(trials) == SMALL.subjects * SMALL.trials
    for trial in trials:
        video = trial["video"]
        assert video["fps"] == SMALL.fps and video["frame_count"] == SMALL.video_frames
        assert video["duration_s"] == pytest.approx(SMALL.video_seconds)
        assert trial["video_start"] == "baseline"


@pytest.mark.parametrize("pointer", ["root", "parent", "preprocessed", "metadata", "ratings_file"])
def test_layout_is_found_from_the_root_its_parent_or_a_subfolder(
    small_deap_master: Path, pointer: str
) -> None:
    path = {
        "root": small_deap_master,
        "parent": small_deap_master.parent,
        "preprocessed": small_deap_master / fmt.PREPROCESSED_DIR,
        "metadata": small_deap_master / fmt.METADATA_DIR,
        "ratings_file": ratings_path(small_deap_master),
    }[pointer]
    layout = find_layout(path)
    assert layout.root == small_deap_master.resolve()
    assert layout.preprocessed_dir == (small_deap_master / fmt.PREPROCESSED_DIR).resolve()
    assert layout.ratings_csv == ratings_path(small_deap_master).resolve()
    assert layout.video_dir == (small_deap_master / fmt.VIDEO_DIR).resolve()
    assert layout.original_dir is None


def test_folder_without_videos_is_usable_with_a_warning(small_deap: Path) -> None:
    import shutil

    shutil.rmtree(small_deap / fmt.VIDEO_DIR)
    scan = scan_deap(small_deap)
    assert scan.usable and scan.usable_subjects == [1, 2]
    assert any(p.severity == "warning" and "no face_video/" in p.message for p in scan.problems)


def test_unknown_folder_is_reported(tmp_path: Path) -> None:
    scan = scan_deap(tmp_path)
    assert not scan.usable
    assert any("no data_preprocessed_python/" in p.message for p in scan.problems)
    with pytest.raises(DeapInputError, match="no such file or directory"):
        scan_deap(tmp_path / "nowhere")
