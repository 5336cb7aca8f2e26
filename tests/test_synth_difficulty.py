"""Synthetic DEAP v2 (``SynthParams.difficulty``, the default): realistic EEG variance, a
common-average referenced .dat, and a face cue that lives on the face in short bursts; the legacy
v1 only when named, with a warning; the held-out ``contact`` EEG family."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.readers import deap_format as df
from pipeline import synth
from pipeline.synth.expression import EXPRESSIVE
from pipeline.synth.face_video import render, scene_background
from pipeline.synth.signals import V1_EFFECTS, nuisance_gains, subject_effects

V2 = synth.SynthParams(subjects=2, trials=8, seconds=6, fps=10, difficulty="paper")


def legacy_v1(**fields: object) -> synth.SynthParams:
    with pytest.warns(synth.LegacyGeneratorWarning):
        return synth.SynthParams(**fields, difficulty="v1")


def test_the_default_is_v2_easy_and_v1_must_be_named() -> None:
    default = synth.SynthParams()
    assert default.difficulty == synth.DEFAULT_DIFFICULTY == "easy"
    assert default.generator_version == synth.GENERATOR_V2_VERSION
    assert legacy_v1().generator_version == synth.GENERATOR_VERSION
    with pytest.raises(ValueError, match="contact"):
        synth.SynthParams(difficulty="v1", eeg_family="contact")


def test_v2_dat_is_common_average_referenced_and_the_recording_before_it_is_not() -> None:
    signals = synth.subject_signals(subject=1, params=synth.SynthParams(trials=8, seconds=6))
    eeg = signals.data[:, : len(df.EEG_CHANNELS)]
    np.testing.assert_allclose(eeg.mean(axis=1), 0.0, atol=1e-9)
    before = signals.recording[:, : len(df.EEG_CHANNELS)]
    assert np.abs(before.mean(axis=1)).mean() > 0.5  # µV: the reference the BDF keeps
    np.testing.assert_allclose(before - before.mean(axis=1, keepdims=True), eeg, atol=1e-9)
    np.testing.assert_array_equal(signals.recording[:, 32:], signals.data[:, 32:])
    v1 = synth.subject_signals(subject=1, params=legacy_v1(trials=8, seconds=6))
    assert v1.car_removed is None and v1.recording is v1.data


def test_v2_effect_sizes_differ_between_subjects_and_a_minority_reverse_the_asymmetry() -> None:
    def effects(difficulty: str) -> list[synth.signals.SubjectEffects]:
        params = (legacy_v1(subjects=32, trials=1) if difficulty == "v1" else
                  synth.SynthParams(subjects=32, trials=1, difficulty=difficulty))
        return [subject_effects(subject=s, params=params) for s in range(1, 33)]

    assert set(effects("v1")) == {V1_EFFECTS}
    paper = effects("paper")
    assert len({e.alpha_arousal for e in paper}) == 32
    reversed_ = sum(e.asymmetry_valence < 0 for e in paper)
    assert 1 <= reversed_ <= 16  # a minority (every 5th subject at the paper level)
    assert all(e.asymmetry_valence > 0 for e in effects("easy"))
    assert max(abs(e.asymmetry_valence) for e in effects("hard")) < max(
        abs(e.asymmetry_valence) for e in effects("easy"))


def test_v2_trial_power_carries_log_normal_nuisance_v1_none() -> None:
    assert nuisance_gains(1, 1, legacy_v1()) is None
    gains = np.array([nuisance_gains(1, e, V2) for e in range(1, 201)])
    sigma = synth.difficulty.LEVELS["paper"].nuisance_sigma
    assert np.log(gains[:, 0]).std() == pytest.approx(sigma, rel=0.25)
    np.testing.assert_array_equal(gains[:, 1], gains[:, 2])  # posterior alpha L/R together


def test_manifest_names_the_generator_version_of_the_difficulty(tmp_path: Path) -> None:
    for difficulty, version in (("v1", "1"), ("hard", "2"), (None, "2")):
        out = tmp_path / str(difficulty)
        fields = {"subjects": 1, "trials": 1, "seconds": 3, "videos": False}
        params = (legacy_v1(**fields) if difficulty == "v1" else synth.SynthParams(**fields)
                  if difficulty is None else synth.SynthParams(**fields, difficulty=difficulty))
        with (pytest.warns(synth.LegacyGeneratorWarning) if difficulty == "v1"
              else contextlib.nullcontext()):
            synth.write_synthetic_deap(out=out, params=params)
        manifest = json.loads((out / synth.MANIFEST_NAME).read_text())
        assert manifest["generator_version"] == version
        assert manifest["params"]["difficulty"] == (difficulty or "easy")


def test_v2_writes_the_per_frame_face_truth_beside_the_videos(tmp_path: Path) -> None:
    params = synth.SynthParams(subjects=1, trials=2, seconds=3, fps=5, difficulty="easy")
    report = synth.write_synthetic_deap(out=tmp_path, params=params)
    manifest = json.loads((tmp_path / synth.MANIFEST_NAME).read_text())
    folder = tmp_path / manifest["face_truth_dir"] / "s01"
    assert sorted(p.name for p in folder.iterdir()) == ["s01_trial01.json", "s01_trial02.json"]
    assert Path(manifest["face_truth_dir"]) / "s01" / "s01_trial01.json" in report.files
    content = json.loads((folder / "s01_trial01.json").read_text())
    experiment = synth.subject_signals(subject=1, params=params).experiment_order[0]
    truth = synth.face_truth(subject=1, experiment_id=int(experiment), params=params)
    assert content["experiment_id"] == experiment and len(content["times_s"]) == truth.n_frames
    np.testing.assert_allclose(content["expression_mouth_brow"], truth.expression, atol=1e-4)
    np.testing.assert_allclose(content["face_boxes_xywh"], truth.boxes, atol=0.01)
    assert content["expressive"] == list(np.abs(truth.expression).max(axis=1) > EXPRESSIVE)


def test_v2_expression_moves_only_pixels_inside_the_face_box() -> None:
    truth = synth.face_truth(subject=1, experiment_id=2, params=V2)
    frames = np.flatnonzero((np.abs(truth.expression).max(axis=1) > 0.5) & ~truth.occluded)
    assert frames.size
    neutral = dataclasses.replace(truth, expression_px=np.zeros_like(truth.expression_px))
    background = scene_background(V2.seed, 1)
    with_cue = list(render(truth, background))
    without = list(render(neutral, background))
    for i in frames[:5]:
        changed = np.abs(with_cue[i].astype(int) - without[i]).max(axis=2) > 2
        ys, xs = np.nonzero(changed)
        assert xs.size > 50  # the expression is visible
        # The brow warp's tail shifts the hairline just above the box by a fraction of a pixel
        # (<= 3 px of frame); the face stage crops the box with a 10 % margin, so a box grown
        # by 5 % still proves the cue stays inside the crop.
        x, y, w, h = truth.boxes[i]
        x, y, w, h = x - 0.05 * w, y - 0.05 * h, 1.1 * w, 1.1 * h
        assert x <= xs.min() and xs.max() <= x + w and y <= ys.min() and ys.max() <= y + h


def test_v2_expression_is_sparse_in_time_during_playback_and_follows_the_class_mostly() -> None:
    params = synth.SynthParams(subjects=1, trials=40, seconds=30, fps=10, difficulty="paper")
    ratings = synth.subject_signals(subject=1, params=params).ratings
    expressive_fraction, agree, windows_with = [], {"mouth": [], "brow": []}, []
    for e in range(1, params.trials + 1):
        truth = synth.face_truth(subject=1, experiment_id=e, params=params)
        playing = truth.times >= df.BASELINE_SECONDS
        assert not truth.expression[~playing].any()  # nothing in the baseline
        strong = np.abs(truth.expression) > EXPRESSIVE
        expressive_fraction.append(strong[playing].any(axis=1).mean())
        classes = np.where(ratings[e - 1, :2] >= 5, 1.0, -1.0)
        for column, part in enumerate(("mouth", "brow")):
            moving = strong[:, column]
            agree[part] += list(np.sign(truth.expression[moving, column]) == classes[column])
        # The 10 frames the face stage samples from each 3 s window (one every 0.3 s).
        sampled = strong.any(axis=1)[playing][1::3][: 10 * 10].reshape(10, 10)
        windows_with += list(sampled.sum(axis=1))
    assert 0.1 < np.mean(expressive_fraction) < 0.45
    level = synth.difficulty.LEVELS["paper"]
    assert np.mean(agree["mouth"]) == pytest.approx(level.agreement, abs=0.06)
    assert np.mean(agree["brow"]) == pytest.approx(level.brow_agreement, abs=0.06)
    windows_with = np.array(windows_with)
    assert (windows_with == 0).mean() > 0.1 and (windows_with == 10).mean() < 0.05


def test_the_default_generator_has_no_colour_shortcut_and_v1_has_it() -> None:
    from pipeline.synth.probes import probe_accuracies

    # 48 videos of the default generator (v2, easy): whole-frame colour says nothing of the ratings
    default = probe_accuracies(synth.SynthParams(subjects=2, trials=24, seconds=3, fps=5),
                               probes=("colour",))
    for target in ("valence", "arousal"):
        assert abs(default["colour"][target] - default["colour"][f"{target}_majority"]) <= 0.1
    v1 = probe_accuracies(legacy_v1(subjects=2, trials=24, seconds=3, fps=5), probes=("colour",))
    assert v1["colour"]["valence"] >= 0.85 and v1["colour"]["arousal"] >= 0.8


def test_paper_expression_ceilings_are_as_documented() -> None:
    from pipeline.synth.probes import probe_accuracies

    params = synth.SynthParams(subjects=4, trials=24, seconds=6, fps=5, difficulty="paper")
    v2 = probe_accuracies(params, probes=("expression",))
    for target in ("valence", "arousal"):
        # measured (seeds 0-2): valence 0.76-0.85, arousal 0.65-0.68 (the brows agree 0.7)
        assert 0.6 <= v2["expression"][target] <= 0.9


def test_v2_eeg_is_learnable_within_a_subject_and_clearly_harder_across_subjects() -> None:
    from pipeline.synth.probes import probe_accuracies

    # 5 subjects: with the paper level's reversed_fraction 0.2, any 5 consecutive subjects hold
    # one whose asymmetry and one whose arousal effect runs the other way
    params = synth.SynthParams(subjects=5, trials=40, seconds=15, videos=False,
                               difficulty="paper")
    eeg = probe_accuracies(params, probes=("eeg",))
    # measured (seed 0): within 0.70 / 0.72, pooled 0.65 / 0.66, loso 0.65 / 0.57
    gaps = []
    for target in ("valence", "arousal"):
        assert eeg["eeg_within"][target] >= 0.6
        assert eeg["eeg"][target] >= 0.58  # a model for all subjects still learns (issue 16)
        assert eeg["eeg_loso"][target] < eeg["eeg_within"][target]
        gaps.append(eeg["eeg_within"][target] - eeg["eeg_loso"][target])
    assert np.mean(gaps) >= 0.05, gaps


def test_the_expression_folder_draws_the_planted_cues_in_feras_layout(tmp_path: Path) -> None:
    """Four classes (mouth sign x brow sign) in train/val/test; the same seed writes the same
    files; two classes differ at the mouth, not in the corners of the image."""
    import cv2

    from pipeline.synth.expression_images import EXPRESSION_CLASSES, write_expression_folder

    counts = write_expression_folder(tmp_path / "a", train_per_class=2, val_per_class=1,
                                     test_per_class=1, seed=3)
    assert counts == {"train": 8, "val": 4, "test": 4}
    for split, n in (("train", 2), ("val", 1), ("test", 1)):
        assert sorted(p.name for p in (tmp_path / "a" / split).iterdir()) == sorted(EXPRESSION_CLASSES)
        assert all(len(list((tmp_path / "a" / split / c).glob("*.png"))) == n for c in EXPRESSION_CLASSES)
    write_expression_folder(tmp_path / "b", train_per_class=2, val_per_class=1, test_per_class=1, seed=3)
    for path in (tmp_path / "a").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    from pipeline.synth.expression import MOUTH_CORNERS
    from pipeline.synth.expression_images import expression_image

    smile, frown = (expression_image(mouth=m, brow=0.0, difficulty="easy",
                                     rng=np.random.default_rng(0)).astype(float) for m in (1.0, -1.0))
    (x, y), _ = MOUTH_CORNERS
    mouth = np.abs(smile - frown)[int(y) - 12:int(y) + 12, int(x) - 12:int(x) + 12].mean()
    corner = np.abs(smile - frown)[:20, :20].mean()
    assert mouth > 5.0 and corner < 0.5, (mouth, corner)
    assert cv2.imread(str(next((tmp_path / "a").rglob("*.png")))).ndim == 3


def test_the_held_out_contact_family_has_channel_gains_per_trial_and_effects_elsewhere() -> None:
    from scipy.signal import welch
    from scipy.stats import spearmanr

    from pipeline.synth.family import CONTACT_SIGMA, LEFT_PARIETAL, RIGHT_PARIETAL

    params = synth.SynthParams(subjects=1, trials=40, seconds=12, videos=False,
                               eeg_family="contact")
    signals = synth.subject_signals(subject=1, params=params)
    gains = signals.contact_gains
    assert gains.shape == (40, 32) and np.log(gains).std() == pytest.approx(CONTACT_SIGMA, rel=0.15)
    assert synth.subject_signals(subject=1, params=params.model_copy(
        update={"eeg_family": "rhythms"})).contact_gains is None
    # the gains scale what each electrode records, the EOG leak included, before the reference
    eeg = signals.recording[:, :32, df.BASELINE_SAMPLES:]
    np.testing.assert_allclose(eeg, gains[:, :, None] * (
        signals.clean_eeg / gains[:, :, None] + signals.eog_mixing @ signals.eog)[
            :, :, df.BASELINE_SAMPLES:], rtol=1e-9, atol=1e-9)
    f, power = welch(eeg / gains[:, :, None], fs=df.SFREQ, nperseg=256, axis=-1)

    def band(lo: float, hi: float, names: tuple[str, ...]) -> np.ndarray:
        rows = [df.EEG_CHANNELS.index(n) for n in names]
        return np.log(power[:, rows][..., (f >= lo) & (f < hi)].mean(axis=(1, 2)))

    valence, arousal = signals.ratings[:, 0], signals.ratings[:, 1]
    # measured (seeds 0-2): theta 0.72-0.78, gamma 0.74-0.83, parietal -0.88 to -0.91, frontal
    # asymmetry (the rhythms family's valence cue) -0.14 to 0.10
    assert spearmanr(band(4, 8, ("Fz", "FC1", "FC2")), arousal)[0] > 0.6
    assert spearmanr(band(32, 42, ("T7", "T8")), arousal)[0] > 0.6
    assert spearmanr(band(8, 13, RIGHT_PARIETAL) - band(8, 13, LEFT_PARIETAL), valence)[0] < -0.7
    frontal = band(8, 13, synth.RIGHT_FRONTAL) - band(8, 13, synth.LEFT_FRONTAL)
    assert abs(spearmanr(frontal, valence)[0]) < 0.3
