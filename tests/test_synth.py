"""The synthetic DEAP writer: DEAP's file formats, determinism, and the planted signals."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import welch
from scipy.stats import spearmanr

from pipeline.readers import deap_format as df
from pipeline import synth

SMALL = synth.SynthParams(subjects=2, trials=4, seconds=4, fps=10, missing_videos=((2, 3),))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthReport, list[str]]:
    out = tmp_path_factory.mktemp("deap")
    lines: list[str] = []
    report = synth.write_synthetic_deap(out=out, params=SMALL, progress=lines.append)
    return out, report, lines


def load_dat(path: Path) -> dict:
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def read_csv_rows(out: Path) -> tuple[str, list[list[str]]]:
    header, *rows = (out / df.METADATA_DIR / df.RATINGS_FILE).read_text().splitlines()
    return header, [row.split(",") for row in rows]


def band_power(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    f, p = welch(x, fs=df.SFREQ, nperseg=256, axis=-1)
    return p[..., (f >= lo) & (f < hi)].mean(axis=-1)


def channels(names: tuple[str, ...] | list[str]) -> list[int]:
    return [df.EEG_CHANNELS.index(n) for n in names]


def truth_of_video(*, subject: int, trial: int, params: synth.SynthParams) -> synth.FaceTruth:
    """Face truth of the video file ``sNN_trialTT.avi`` (TT = presentation order)."""
    experiment = synth.subject_signals(subject=subject, params=params).experiment_order[trial - 1]
    return synth.face_truth(subject=subject, experiment_id=int(experiment), params=params)


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


# --- .dat ------------------------------------------------------------------------------------


def test_dat_loads_with_plain_pickle_as_deap_shapes(written):
    out, _, _ = written
    for subject in (1, 2):
        content = load_dat(out / df.PREPROCESSED_DIR / df.dat_name(subject))
        assert set(content) == {"data", "labels"}
        assert content["data"].shape == (4, df.N_CHANNELS, df.SFREQ * (3 + 4))
        assert content["data"].dtype == np.float64
        assert content["labels"].shape == (4, 4)
        assert content["labels"].dtype == np.float64
        assert np.all((content["labels"] >= 1) & (content["labels"] <= 9))


def test_dat_is_a_python2_pickle_that_fails_without_latin1_like_the_real_files(written):
    out, _, _ = written
    with (out / df.PREPROCESSED_DIR / "s01.dat").open("rb") as f, pytest.raises(UnicodeDecodeError):
        pickle.load(f)


def test_dat_holds_subject_signals_in_experiment_id_order(written):
    out, _, _ = written
    signals = synth.subject_signals(subject=2, params=SMALL)
    content = load_dat(out / df.PREPROCESSED_DIR / "s02.dat")
    np.testing.assert_array_equal(content["data"], signals.data)
    np.testing.assert_array_equal(content["labels"], signals.ratings)


# --- participant_ratings.csv -----------------------------------------------------------------


def test_ratings_csv_has_verbatim_header_and_rows_sorted_by_participant_then_trial(written):
    out, _, _ = written
    header, rows = read_csv_rows(out)
    assert header == df.RATINGS_HEADER_LINE
    keys = [(int(r[0]), int(r[1])) for r in rows]
    assert keys == sorted(keys) == [(s, t) for s in (1, 2) for t in range(1, 5)]


def test_ratings_csv_trial_is_a_permutation_and_start_time_grows_with_trial(written):
    out, _, _ = written
    _, rows = read_csv_rows(out)
    for subject in (1, 2):
        mine = [r for r in rows if int(r[0]) == subject]
        assert sorted(int(r[2]) for r in mine) == [1, 2, 3, 4]
        starts = np.array([int(r[3]) for r in mine])
        assert 1.6e6 <= starts[0] <= 1.8e6
        gaps_s = np.diff(starts) / 1e6
        assert np.all(gaps_s >= 5 + 3 + 4 + 15) and np.all(gaps_s <= 5 + 3 + 4 + 20)


def test_ratings_csv_equals_dat_labels_for_each_experiment_id(written):
    out, _, _ = written
    _, rows = read_csv_rows(out)
    for subject in (1, 2):
        labels = load_dat(out / df.PREPROCESSED_DIR / df.dat_name(subject))["labels"]
        for row in (r for r in rows if int(r[0]) == subject):
            assert all(len(v.split(".")[1]) == 2 for v in row[4:8])
            np.testing.assert_array_equal([float(v) for v in row[4:8]], labels[int(row[2]) - 1])


def test_familiarity_is_an_integer_except_for_participants_the_real_file_leaves_blank(written):
    out, _, _ = written
    _, rows = read_csv_rows(out)
    assert all(1 <= int(r[8]) <= 5 for r in rows if r[0] == "1")
    assert all(r[8] == "" for r in rows if r[0] == "2")  # DEAP's participant 2 has no familiarity


def test_ratings_are_balanced_quadrants_away_from_threshold():
    signals = synth.subject_signals(subject=1, params=synth.SynthParams(trials=40, seconds=3))
    valence, arousal = signals.ratings[:, 0], signals.ratings[:, 1]
    assert np.all(np.abs(valence - 5) >= 0.4) and np.all(np.abs(arousal - 5) >= 0.4)
    quadrants = list(zip(valence > 5, arousal > 5, strict=True))
    assert all(quadrants.count(q) == 10 for q in set(quadrants))


# --- face videos -----------------------------------------------------------------------------


def test_videos_are_named_by_presentation_order_and_missing_ones_skipped(written):
    out, _, _ = written
    videos = out / df.VIDEO_DIR
    found = sorted(p.relative_to(videos).as_posix() for p in videos.rglob("*"))
    expected = [f"s01/s01_trial{t:02d}.avi" for t in range(1, 5)]
    expected += ["s01", "s02"] + [f"s02/s02_trial{t:02d}.avi" for t in (1, 2, 4)]
    assert found == sorted(expected)


def test_videos_read_back_with_plain_opencv_as_720x576_at_params_fps(written):
    out, _, _ = written
    for path in (out / df.VIDEO_DIR).rglob("*.avi"):
        capture = cv2.VideoCapture(str(path))
        assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == 720
        assert capture.get(cv2.CAP_PROP_FRAME_HEIGHT) == 576
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == round((3 + 4) * 10)
        capture.release()
    assert len(read_frames(out / df.VIDEO_DIR / "s01" / "s01_trial02.avi")) == 70


def test_video_file_trial_tt_shows_the_experiment_presented_at_trial_tt(written):
    out, _, _ = written
    signals = synth.subject_signals(subject=1, params=SMALL)
    decoded = read_frames(out / df.VIDEO_DIR / "s01" / "s01_trial03.avi")[40]
    errors = {}
    for e in range(1, 5):
        rendered = list(synth.render_video_frames(subject=1, experiment_id=e, params=SMALL))[40]
        errors[e] = np.abs(decoded.astype(int) - rendered).mean()
    assert min(errors, key=errors.get) == signals.experiment_order[2]
    assert errors[signals.experiment_order[2]] < 4  # compression error only


def test_playback_videos_start_3_s_into_the_baseline_videos_timeline():
    baseline = synth.face_truth(subject=1, experiment_id=2, params=SMALL)
    playback = synth.face_truth(
        subject=1, experiment_id=2, params=SMALL.model_copy(update={"video_start": "playback"})
    )
    assert playback.n_frames == 4 * 10 and baseline.n_frames == 7 * 10
    np.testing.assert_allclose(playback.times, baseline.times[30:])
    np.testing.assert_allclose(playback.boxes, baseline.boxes[30:])
    np.testing.assert_array_equal(playback.occluded, baseline.occluded[30:])


def test_face_truth_keeps_the_face_in_frame_at_150_to_250_px_and_occludes_twice_per_trial():
    params = synth.SynthParams(trials=3, seconds=60, fps=25)
    for experiment in (1, 2, 3):
        truth = synth.face_truth(subject=1, experiment_id=experiment, params=params)
        x, y, w, h = truth.boxes.T
        assert np.all((x >= 0) & (y >= 0) & (x + w <= 720) & (y + h <= 576))
        assert 150 <= h.min() and h.max() <= 250 and np.ptp(x) > 100
        edges = np.diff(truth.occluded.astype(int))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        assert len(starts) == len(stops) == 2
        assert set(stops - starts) <= {7, 8}  # 0.3 s at 25 fps
        assert not truth.occluded[truth.times < 3].any()


def test_face_box_holds_the_face_and_occluded_frames_hold_the_opaque_rectangle(written):
    out, _, _ = written
    frames = read_frames(out / df.VIDEO_DIR / "s01" / "s01_trial01.avi")
    truth = truth_of_video(subject=1, trial=1, params=SMALL)
    assert truth.occluded.any() and not truth.occluded.all()
    for i, frame in enumerate(frames):
        x, y, w, h = np.round(truth.boxes[i]).astype(int)
        inner = frame[y + 4 : y + h - 4, x + 4 : x + w - 4].reshape(-1, 3).astype(int)
        if truth.occluded[i]:
            # mp4v's YUV round trip shifts a flat dark grey by a few levels
            assert np.all(np.abs(np.median(inner, axis=0) - synth.OCCLUDER_BGR) <= 6)
            assert inner.std(axis=0).max() < 3
        else:
            blue, red = inner[:, 0].mean(), inner[:, 2].mean()
            assert red - blue > 20, "skin is redder than blue; the grey background is not"
            assert inner.std() > 15, "a face has texture; the occluder is flat"


def test_a_face_detector_finds_the_face_in_its_box_and_nothing_when_occluded(written):
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    out, _, _ = written
    detector = Cascade(lbp_frontal_face_cascade_filename())
    frames = read_frames(out / df.VIDEO_DIR / "s01" / "s01_trial02.avi")
    truth = truth_of_video(subject=1, trial=2, params=SMALL)
    picks = [*np.flatnonzero(truth.occluded), *range(0, truth.n_frames, 10)]
    for i in picks:
        half = np.ascontiguousarray(cv2.resize(frames[i], (360, 288))[..., ::-1])
        found = detector.detect_multi_scale(
            img=half, scale_factor=1.2, step_ratio=1, min_size=(40, 40), max_size=(200, 200)
        )
        if truth.occluded[i]:
            assert found == [], f"frame {i} is occluded"
        else:
            centres = [(2 * d["c"] + d["width"], 2 * d["r"] + d["height"]) for d in found]
            x, y, w, h = truth.boxes[i]
            assert any(x < cx < x + w and y < cy < y + h for cx, cy in centres), f"frame {i}"


def test_legacy_v1_warns_and_its_face_video_tint_is_warmer_for_higher_valence():
    with pytest.warns(synth.LegacyGeneratorWarning, match="colour shortcut"):
        params = synth.SynthParams(subjects=1, trials=8, seconds=3, fps=2, difficulty="v1")
    valence = synth.subject_signals(subject=1, params=params).ratings[:, 0]
    warmth = {}
    for e in (int(np.argmax(valence)) + 1, int(np.argmin(valence)) + 1):
        frames = list(synth.render_video_frames(subject=1, experiment_id=e, params=params))
        frame = frames[-1].astype(float)
        warmth[e] = frame[..., 2].mean() / frame[..., 0].mean()
    assert warmth[int(np.argmax(valence)) + 1] > warmth[int(np.argmin(valence)) + 1] * 1.05


# --- determinism -----------------------------------------------------------------------------


def test_same_params_give_identical_files_and_another_seed_different_ones(tmp_path):
    params = synth.SynthParams(subjects=1, trials=2, seconds=3, fps=5)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for p, out in [(params, a), (params, b), (params.model_copy(update={"seed": 1}), c)]:
        synth.write_synthetic_deap(out=out, params=p)
    for name in ("data_preprocessed_python/s01.dat", "metadata_csv/participant_ratings.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / synth.MANIFEST_NAME).read_bytes() == (b / synth.MANIFEST_NAME).read_bytes()
    video = "face_video/s01/s01_trial01.avi"
    for fa, fb in zip(read_frames(a / video), read_frames(b / video), strict=True):
        np.testing.assert_array_equal(fa, fb)
    dat = "data_preprocessed_python/s01.dat"
    assert (a / dat).read_bytes() != (c / dat).read_bytes()


def test_a_subject_does_not_depend_on_how_many_subjects_are_written(written, tmp_path):
    out, _, _ = written
    alone = SMALL.model_copy(update={"subjects": 1, "missing_videos": (), "videos": False})
    synth.write_synthetic_deap(out=tmp_path, params=alone)
    name = f"{df.PREPROCESSED_DIR}/s01.dat"
    assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    three = synth.subject_signals(subject=2, params=SMALL.model_copy(update={"subjects": 3}))
    np.testing.assert_array_equal(three.data, synth.subject_signals(subject=2, params=SMALL).data)


# --- planted EEG signals ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def forty() -> synth.SubjectSignals:
    """The default generator (v2, easy). Its ``.dat`` is common-average referenced; the planted
    relations are stated on ``recording``, the EEG before that reference (what the BDF holds)."""
    return synth.subject_signals(subject=1, params=synth.SynthParams(trials=40, seconds=12))


def test_observed_eeg_is_clean_plus_documented_eog_leak(forty):
    observed = forty.clean_eeg + forty.eog_mixing @ forty.eog
    np.testing.assert_allclose(forty.recording[:, :32], observed, rtol=0, atol=1e-9)
    rows = np.flatnonzero(np.any(forty.eog_mixing != 0, axis=1))
    leaking = sorted(df.EEG_CHANNELS[i] for i in rows)
    assert leaking == ["AF3", "AF4", "Fp1", "Fp2"]
    assert forty.eog_mixing[df.EEG_CHANNELS.index("Fp1")].tolist() == [-0.15, 0.55]
    noise = forty.data[:, 32:34] - forty.eog
    assert 1.5 < noise.std() < 2.5


def test_fp1_follows_veog_and_o1_does_not(forty):
    veog = forty.recording[:, 33].ravel()
    fp1 = np.corrcoef(forty.recording[:, channels(["Fp1"])[0]].ravel(), veog)[0, 1]
    o1 = np.corrcoef(forty.recording[:, channels(["O1"])[0]].ravel(), veog)[0, 1]
    assert fp1 > 0.4 and abs(o1) < 0.1


def test_blinks_and_saccades_have_documented_rate_and_size(forty):
    veog, heog = forty.eog[:, 1], forty.eog[:, 0]
    blinks = (np.diff((veog > 50).astype(int), axis=1) == 1).sum()
    rate = blinks / (forty.eog.shape[0] * forty.eog.shape[2] / df.SFREQ)
    assert 0.15 < rate < 0.55
    assert 100 <= veog.max() <= 200 and veog.min() >= 0
    assert np.abs(heog).max() <= 80


def test_eeg_amplitudes_are_tens_of_microvolts(forty):
    std = forty.clean_eeg.std(axis=(0, 2))
    assert np.all((std > 8) & (std < 60))


def test_alpha_is_stronger_over_occipital_than_frontal_channels(forty):
    alpha = band_power(forty.recording[:, :32, df.BASELINE_SAMPLES :], 8, 13).mean(axis=0)
    occipital, frontal = alpha[channels(["O1", "Oz", "O2"])], alpha[channels(["Fz", "F3", "F4"])]
    assert occipital.mean() > 1.3 * frontal.mean()


def test_beta_rises_and_alpha_falls_with_arousal(forty):
    trial = forty.recording[:, :32, df.BASELINE_SAMPLES :]
    arousal = forty.ratings[:, 1]
    # v1 held > 0.7 and < -0.7; v2 scales each subject's slopes by U(0.5, 1.5) and every source
    # group by a label-independent trial gain (measured, seeds 0-2: beta 0.37-0.57, alpha
    # -0.68 to -0.80 over 40 trials of subject 1)
    assert spearmanr(band_power(trial, 13, 30).mean(axis=1), arousal)[0] > 0.3
    assert spearmanr(band_power(trial, 8, 13).mean(axis=1), arousal)[0] < -0.6


def test_frontal_alpha_asymmetry_follows_valence(forty):
    alpha = band_power(forty.recording[:, :32, df.BASELINE_SAMPLES :], 8, 13)
    right_minus_left = np.log(alpha[:, channels(synth.RIGHT_FRONTAL)].mean(axis=1)) - np.log(
        alpha[:, channels(synth.LEFT_FRONTAL)].mean(axis=1)
    )
    valence = forty.ratings[:, 0]
    assert spearmanr(right_minus_left, valence)[0] > 0.6
    assert right_minus_left[valence > 5].mean() > 0 > right_minus_left[valence < 5].mean()


def test_baseline_runs_at_neutral_gains():
    gains = synth.rhythm_gains(valence=5.0, arousal=5.0)
    assert gains == {"alpha": 1.0, "beta": 1.0, "frontal_left": 1.0, "frontal_right": 1.0}
    high = synth.rhythm_gains(valence=9.0, arousal=9.0)
    assert high["beta"] == pytest.approx(1.4) and high["alpha"] == pytest.approx(0.7)
    assert high["frontal_left"] < high["frontal_right"]


def test_fastica_converges_and_isolates_the_blinks():
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    signals = synth.subject_signals(subject=1, params=synth.SynthParams(trials=4, seconds=12))
    continuous = np.concatenate(list(signals.data[:, :32]), axis=1).T
    ica = FastICA(n_components=15, random_state=0, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        sources = ica.fit_transform(continuous)
    assert ica.n_iter_ < 100
    veog = np.concatenate(list(signals.eog[:, 1]))
    assert max(abs(np.corrcoef(s, veog)[0, 1]) for s in sources.T) > 0.9


# --- params, report, manifest ----------------------------------------------------------------


def test_report_lists_every_written_file_with_its_bytes_and_progress_names_them(written):
    out, report, lines = written
    on_disk = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert report.files == on_disk
    assert report.total_bytes == sum((out / f).stat().st_size for f in on_disk)
    assert not any("partial" in f.name for f in on_disk)
    assert sum("wrote s0" in line and ".avi" in line for line in lines) == 7
    assert any("s02_trial03.avi" in line and "skipped" in line for line in lines)
    assert any("s01.dat" in line for line in lines)


def test_manifest_says_synthetic_and_round_trips_the_params(written):
    out, _, _ = written
    manifest = json.loads((out / synth.MANIFEST_NAME).read_text())
    assert manifest["synthetic"] is True and "SYNTHETIC" in manifest["note"]
    assert manifest["generator_version"] == synth.GENERATOR_V2_VERSION
    assert synth.SynthParams.model_validate(manifest["params"]) == SMALL


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("s01_trial03,s02_trial05", ((1, 3), (2, 5))),
        ("2:5, 1:3", ((1, 3), (2, 5))),
        ("s1_trial3.avi s01_trial03", ((1, 3),)),
        ("", ()),
    ],
)
def test_parse_missing_videos_accepts_file_stems_and_pairs(spec, expected):
    assert synth.parse_missing_videos(spec) == expected


@given(st.sets(st.tuples(st.integers(1, 22), st.integers(1, 40)), max_size=10))
def test_parse_missing_videos_round_trips_file_names(pairs):
    spec = ",".join(f"s{s:02d}_trial{t:02d}" for s, t in pairs)
    assert synth.parse_missing_videos(spec) == tuple(sorted(pairs))


def test_parse_missing_videos_rejects_garbage_naming_it():
    with pytest.raises(ValueError, match="trial3x"):
        synth.parse_missing_videos("s01_trial03,trial3x")


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"missing_videos": "s03_trial01"}, "s03_trial01"),
        ({"missing_videos": ((1, 9),)}, "s01_trial09"),
        ({"subjects": 25, "missing_videos": "23:1"}, "s23_trial01"),
        ({"seconds": 2}, "seconds"),
        ({"subjects": 33}, "subjects"),
        ({"codec": "H264"}, "codec"),
        ({"colour": True}, "colour"),
    ],
)
def test_bad_params_are_rejected_with_a_message_naming_the_problem(update, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        synth.SynthParams(**{"subjects": 2, "trials": 8, **update})


def test_missing_videos_given_as_a_string_are_parsed():
    params = synth.SynthParams(missing_videos="s02_trial05, 1:3")
    assert params.missing_videos == ((1, 3), (2, 5))


def test_subjects_beyond_22_get_no_video_and_face_truth_refuses_them(tmp_path):
    params = synth.SynthParams(subjects=23, trials=1, seconds=3, fps=2)
    synth.write_synthetic_deap(out=tmp_path, params=params)
    filmed = sorted(p.name for p in (tmp_path / df.VIDEO_DIR).iterdir())
    assert filmed == [df.subject_tag(s) for s in range(1, 23)]
    assert (tmp_path / df.PREPROCESSED_DIR / "s23.dat").exists()
    with pytest.raises(ValueError, match="no face video"):
        synth.face_truth(subject=23, experiment_id=1, params=params)
