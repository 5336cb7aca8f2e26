"""Raw DEAP ingest from data_original/sNN.bdf (issue 9), on the project's synthetic BDF files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.config import PreprocessConfig
from flows.preprocess import RunSummary, run_chain_inline
from pipeline.readers import deap_format as fmt
from pipeline.readers.bdf import load_bdf_subject, status_events
from pipeline.readers.deap import load_ratings
from pipeline.errors import DeapInputError
from pipeline.synth import (
    STATUS_HIGH_BITS,
    SynthParams,
    bdf_channels,
    subject_signals,
    write_bdf_file,
    write_subject_bdf,
    write_synthetic_deap,
)
from store_schema.engine.store import FeatureStore
from tests.conftest import private_copy

PARAMS = SynthParams(subjects=2, trials=3, seconds=6, seed=0, videos=False, bdf=True)
EEG_STAGES = ["ingest", "eeg", "segment"]
PLAYBACK = fmt.STATUS_CODES["playback"]


@pytest.fixture(scope="module")
def deap_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deap-bdf") / "DEAP"
    write_synthetic_deap(out=out, params=PARAMS)
    return out


@pytest.fixture()
def deap(deap_master: Path, tmp_path: Path) -> Path:
    return private_copy(deap_master, tmp_path)


def rows_of(deap: Path, subject: int):
    return load_ratings(deap / fmt.METADATA_DIR / fmt.RATINGS_FILE).by_subject[subject]


def run(deap: Path, store: Path, source: str, **overrides) -> RunSummary:
    overrides.setdefault("stages", EEG_STAGES)
    return run_chain_inline(PreprocessConfig(deap=deap, store=str(store),
                                             ingest={"source": source}, **overrides))


def statuses(summary: RunSummary) -> dict[tuple[int, str], str]:
    return {(o.subject, o.stage.value): o.status for o in summary.outcomes}


def channel_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-channel correlation of (n, channels, samples) arrays over all trials and samples."""
    a2 = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
    b2 = np.moveaxis(b, 1, 0).reshape(b.shape[1], -1)
    return np.array([np.corrcoef(x, y)[0, 1] for x, y in zip(a2, b2, strict=True)])


def test_synth_with_bdf_writes_48_channel_512_hz_recordings(deap_master: Path) -> None:
    import mne

    for subject in (1, 2):
        raw = mne.io.read_raw_bdf(deap_master / fmt.ORIGINAL_DIR / fmt.bdf_name(subject),
                                  verbose="error")
        assert raw.info["sfreq"] == fmt.BDF_SFREQ and len(raw.ch_names) == 48
        assert raw.ch_names[:32] == list(fmt.TWENTE_EEG_ORDER)  # participants 1-22: Twente
        assert raw.ch_names[32:40] == list(fmt.EXG_CHANNELS) and raw.ch_names[-1] == "Status"
        events = mne.find_events(raw, stim_channel="Status", shortest_event=1, verbose="error")
        codes = events[:, 2].tolist()
        assert codes[:2] == [1, 1] and codes[-1] == 7
        assert codes[2:-1] == [2, 3, 4, 5, 1] * PARAMS.trials
        playback = events[events[:, 2] == PLAYBACK, 0]
        fixation = events[events[:, 2] == fmt.STATUS_CODES["fixation"], 0]
        np.testing.assert_array_equal(playback - fixation, 5 * fmt.BDF_SFREQ)


def test_synthetic_bdf_is_deterministic(tmp_path: Path) -> None:
    params = SynthParams(subjects=1, trials=2, seconds=3, videos=False, bdf=True)
    write_synthetic_deap(out=tmp_path / "a", params=params)
    write_synthetic_deap(out=tmp_path / "b", params=params)
    name = Path(fmt.ORIGINAL_DIR) / fmt.bdf_name(1)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_original_ingest_matches_preprocessed_in_shape_order_and_signal(deap: Path, tmp_path: Path) -> None:
    pre, orig = tmp_path / "pre.zarr", tmp_path / "orig.zarr"
    assert set(statuses(run(deap, pre, "preprocessed")).values()) == {"computed"}
    assert set(statuses(run(deap, orig, "original")).values()) == {"computed"}
    a, b = FeatureStore.open(str(pre), mode="r"), FeatureStore.open(str(orig), mode="r")
    for subject in (1, 2):
        for name in ("ratings", "experiment_id", "presentation_trial"):
            np.testing.assert_array_equal(a.read(subject, "ingest", name), b.read(subject, "ingest", name))
        for name in ("trial_index", "experiment_id", "presentation_trial", "segment_index",
                     "start_s", *fmt.RATING_NAMES):
            np.testing.assert_array_equal(a.read(subject, "segment", name), b.read(subject, "segment", name))
        assert a.read(subject, "segment", "eeg").shape == b.read(subject, "segment", "eeg").shape
        assert b.record(subject, "ingest").extra["source"] == "original"
        # Generator v2 (the default): the .dat is common-average referenced, as DEAP's is, and
        # the BDF holds the same recording before that reference, so both sources agree as they
        # are (measured: ingest r 0.99995). Generator v1's .dat had no reference (r 0.53).
        ingest_r = channel_correlations(a.read(subject, "ingest", "eeg"),
                                        b.read(subject, "ingest", "eeg"))
        assert ingest_r.min() >= 0.99, ingest_r
        eog_r = channel_correlations(b.read(subject, "ingest", "eog"), a.read(subject, "ingest", "eog"))
        assert eog_r.min() >= 0.99, eog_r
        # After the eeg stage the two may still differ by their ICA fits (float rounding of
        # two sources): on average they agree.
        segment_r = channel_correlations(a.read(subject, "segment", "eeg"),
                                         b.read(subject, "segment", "eeg"))
        assert segment_r.mean() >= 0.95 and segment_r.min() >= 0.8, segment_r


def test_switching_source_recomputes_the_eeg_chain_then_skips(deap: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    run(deap, store, "preprocessed")
    switched = run(deap, store, "original")
    assert set(statuses(switched).values()) == {"computed"}
    record = FeatureStore.open(str(store), mode="r").record(1, "ingest")
    assert "bdf" in record.inputs and "dat" not in record.inputs
    assert set(statuses(run(deap, store, "original")).values()) == {"skipped"}


def test_twente_channels_land_in_their_geneva_rows(deap: Path, tmp_path: Path) -> None:
    signals = subject_signals(subject=1, params=PARAMS)
    tau = np.arange(signals.data.shape[2]) / fmt.SFREQ
    freqs = 5.0 + np.arange(32)  # Geneva row c carries a sinusoid at 5 + c Hz
    planted = signals.data.copy()
    planted[:, :32] = 20.0 * np.sin(2 * np.pi * freqs[:, None] * tau)
    path = tmp_path / "s01.bdf"
    write_subject_bdf(path, signals=dataclasses.replace(signals, data=planted), params=PARAMS)
    recording = load_bdf_subject(path, subject=1, rows=rows_of(deap, 1))
    assert recording.channel_order == "names"
    spectrum = np.abs(np.fft.rfft(recording.eeg[:, :, fmt.BASELINE_SAMPLES:], axis=-1)).mean(axis=0)
    peak = np.fft.rfftfreq(recording.eeg.shape[2] - fmt.BASELINE_SAMPLES, 1 / fmt.SFREQ)[spectrum.argmax(axis=1)]
    np.testing.assert_allclose(peak, freqs, atol=0.2)


@pytest.mark.parametrize("offset", [STATUS_HIGH_BITS, -0x800000 + STATUS_HIGH_BITS])
def test_status_codes_with_high_bit_offsets_are_masked(deap: Path, tmp_path: Path, offset: int) -> None:
    signals = subject_signals(subject=1, params=PARAMS)
    plain = load_bdf_subject(deap / fmt.ORIGINAL_DIR / fmt.bdf_name(1), subject=1, rows=rows_of(deap, 1))
    path = tmp_path / "s01.bdf"
    write_subject_bdf(path, signals=signals, params=PARAMS, status_offset=offset)
    shifted = load_bdf_subject(path, subject=1, rows=rows_of(deap, 1))
    np.testing.assert_array_equal(shifted.playback_onsets_s, plain.playback_onsets_s)
    np.testing.assert_array_equal(shifted.eeg, plain.eeg)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=40),
       st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40))
def test_status_events_ignore_the_high_bits(codes: list[int], high: list[int]) -> None:
    n = min(len(codes), len(high))
    low = np.array(codes[:n])
    status = low + (np.array(high[:n]) << 8)
    found = status_events(status.astype(np.float64))
    expected = status_events(low.astype(np.float64))
    np.testing.assert_array_equal(found.samples, expected.samples)
    np.testing.assert_array_equal(found.codes, expected.codes)


def test_status_channel_named_empty_or_minus_one_is_found(deap: Path, tmp_path: Path) -> None:
    signals = subject_signals(subject=1, params=PARAMS)
    labels, data, status = bdf_channels(signals=signals, params=PARAMS)
    for label in ("", "-1"):
        path = tmp_path / f"s01{label}.bdf"
        write_bdf_file(path, labels=labels, data=data, status=status, sfreq=fmt.BDF_SFREQ,
                       status_label=label)
        recording = load_bdf_subject(path, subject=1, rows=rows_of(deap, 1))
        assert recording.status_channel == label and recording.eeg.shape[0] == PARAMS.trials


def _rewrite_status(deap: Path, subject: int, keep_playback: int) -> Path:
    """Rewrite sNN.bdf keeping only the first ``keep_playback`` code-4 markers."""
    signals = subject_signals(subject=subject, params=PARAMS)
    labels, data, status = bdf_channels(signals=signals, params=PARAMS)
    marked = np.flatnonzero(status == PLAYBACK)
    onsets = marked[np.concatenate([[True], np.diff(marked) > 1])]
    for onset in onsets[keep_playback:]:
        status[onset: onset + 16][status[onset: onset + 16] == PLAYBACK] = 0
    path = deap / fmt.ORIGINAL_DIR / fmt.bdf_name(subject)
    write_bdf_file(path, labels=labels, data=data, status=status, sfreq=fmt.BDF_SFREQ)
    return path


def test_missing_playback_marker_fails_that_subject_only(deap: Path, tmp_path: Path) -> None:
    path = _rewrite_status(deap, 2, keep_playback=0)
    summary = run(deap, tmp_path / "store.zarr", "original")
    result = statuses(summary)
    assert [result[(1, stage)] for stage in EEG_STAGES] == ["computed"] * 3
    assert result[(2, "ingest")] == "failed"
    error = next(o.error for o in summary.failures() if o.stage.value == "ingest")
    assert str(path) in error and "code-4" in error


def test_fewer_playback_markers_than_rated_trials_is_reported_not_guessed(deap: Path) -> None:
    path = _rewrite_status(deap, 1, keep_playback=PARAMS.trials - 1)
    with pytest.raises(DeapInputError) as err:
        load_bdf_subject(path, subject=1, rows=rows_of(deap, 1))
    message = str(err.value)
    assert str(path) in message
    assert f"{PARAMS.trials - 1} code-4" in message and f"{PARAMS.trials} rated trials" in message


def test_wrong_sampling_rate_is_a_clear_error(deap: Path, tmp_path: Path) -> None:
    path = tmp_path / "s01.bdf"
    write_subject_bdf(path, signals=subject_signals(subject=1, params=PARAMS), params=PARAMS, sfreq=256)
    with pytest.raises(DeapInputError, match=r"256 Hz, expected DEAP's 512 Hz"):
        load_bdf_subject(path, subject=1, rows=rows_of(deap, 1))


def test_cli_synth_with_bdf_writes_data_original(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "DEAP"
    result = CliRunner().invoke(app, ["synth", str(out), "--subjects", "1", "--trials", "2",
                                      "--seconds", "3", "--no-videos", "--with-bdf"])
    assert result.exit_code == 0, result.output
    assert (out / fmt.ORIGINAL_DIR / fmt.bdf_name(1)).is_file()
    assert (out / fmt.PREPROCESSED_DIR / fmt.dat_name(1)).is_file()


def test_preprocess_source_original_without_bdf_files_names_what_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "DEAP"
    write_synthetic_deap(out=out, params=PARAMS.model_copy(update={"subjects": 1, "bdf": False}))
    # refused by the config, before any work (pydantic's ValidationError is a ValueError)
    with pytest.raises(ValueError, match="no sNN.bdf files found"):
        run(out, tmp_path / "store.zarr", "original")
    summary = run(out, tmp_path / "store.zarr", "original", subjects=[1], stages=["ingest"])
    assert summary.outcomes[0].status == "failed" and "data_original" in summary.outcomes[0].error
