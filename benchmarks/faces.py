"""Face stage throughput on one core: the whole stage vs detection alone, in one run.

For each codec, writes a synthetic subject (720x576 video), builds its segment table with the EEG
stages (not timed), then measures on one CPU core:

- the whole face stage as the flow runs it (``store_schema.run.runner.run_row`` with the faces row, ``force``): probe
  the videos, decode the sampled frames, detect, crop, pad, write and commit to the Zarr store;
- BlazeFace detection alone on the same frames, already decoded (decoding not timed).

Prints frames per second of both, their ratio, and the projected time for all of DEAP's face
videos (22 subjects x 40 trials x 20 segments x 10 frames = 176,000 frames).

    .venv/bin/python benchmarks/faces.py [--trials 4] [--seconds 60] [--fps 25] [--codecs MJPG,mp4v,DV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

DEAP_FRAMES = 22 * 40 * 20 * 10


def to_dv(path: Path) -> None:
    """Re-encode a video as DV in AVI (DEAP's codec: intra-only, interlaced PAL), in place."""
    import av

    tmp = path.with_name(path.stem + ".dv.avi")
    with av.open(str(path)) as src, av.open(str(tmp), "w") as dst:
        stream = dst.add_stream("dvvideo", rate=int(round(src.streams.video[0].average_rate)))
        stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
        for frame in src.decode(video=0):
            out = frame.reformat(format="yuv420p")
            out.pts = None
            for packet in stream.encode(out):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=float, default=25.0, help="PAL DV (DEAP's camera) is 25 fps")
    parser.add_argument("--codecs", default="MJPG,mp4v,DV",
                        help="MJPG and mp4v as the synthetic generator writes them; DV: the MJPG "
                             "videos re-encoded with PyAV's dvvideo (DEAP's camera codec)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = parser.parse_args()

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, threads included
    import cv2

    cv2.setNumThreads(1)

    from flows.config import PreprocessConfig
    from flows.preprocess import run_chain_inline
    from pipeline.stages import STAGE_TABLE
    from pipeline.readers.deap import find_layout
    from pipeline.weights.face_model import resolve_face_model
    from pipeline.stages.faces.detect import BlazeFace, find_trial_videos, read_frames, sample_frame_indices
    from pipeline.stages.faces.params import FacesParams
    from pipeline.synth import SynthParams, write_synthetic_deap
    from store_schema.contract.layout import Stage, stage_path
    from store_schema.run.runner import run_row
    from store_schema.engine.store import FeatureStore
    from store_schema.contract.table import StageContext

    model, _ = resolve_face_model()
    params = FacesParams()
    print(f"one core; {args.trials} trials x {args.seconds} s at {args.fps:g} fps, 720x576; "
          f"mediapipe BlazeFace short-range, min confidence {params.min_confidence}")
    for codec in args.codecs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            deap = Path(tmp) / "DEAP"
            started = time.perf_counter()
            write_synthetic_deap(out=deap, params=SynthParams(
                subjects=1, trials=args.trials, seconds=args.seconds, fps=args.fps,
                codec="MJPG" if codec == "DV" else codec))
            if codec == "DV":
                for path in (deap / "face_video").rglob("*.avi"):
                    to_dv(path)
            video_mb = sum(p.stat().st_size for p in (deap / "face_video").rglob("*.avi")) / 1e6
            store_url = str(Path(tmp) / "store.zarr")
            config = PreprocessConfig(deap=deap, store=store_url, subjects=[1],
                                      stages=["ingest", "eeg", "segment"])
            assert run_chain_inline(config).ok
            setup_s = time.perf_counter() - started
            store = FeatureStore.open(store_url)
            layout = find_layout(deap)

            def run_stage_once() -> float:
                # A first run's write: drop the previous run's group first (not timed).
                shutil.rmtree(Path(store_url) / stage_path(1, "faces"), ignore_errors=True)
                t0 = time.perf_counter()
                outcome = run_row(store, STAGE_TABLE[Stage.faces], params=params,
                                  context=StageContext(subject=1, deap=deap), force=True)
                assert outcome.status == "computed", outcome.error
                return time.perf_counter() - t0

            run_stage_once()  # warm-up: imports, page cache
            record = store.record(1, "faces")
            n_frames = record.extra["frames"]

            # Detection alone on the same sampled frames, decoded beforehand (not timed).
            trial_index = store.read(1, "segment", "trial_index")
            presentation = store.read(1, "segment", "presentation_trial")
            start_s = store.read(1, "segment", "start_s")
            pairs = sorted(set(zip(trial_index.tolist(), presentation.tolist())))
            videos = find_trial_videos(video_dir=layout.video_dir, subject=1, trials=pairs,
                                       trial_seconds=float(args.seconds))
            frames = []
            for video in videos:
                rows = trial_index == video.trial_index
                idx = sample_frame_indices(start_s=start_s[rows], window_s=3.0, fps=video.video.fps,
                                           offset_s=video.offset_s, frame_count=video.video.frame_count)
                decoded = read_frames(video.path, idx.ravel().tolist(), fps=video.video.fps)
                frames += [decoded[int(i)] for i in idx.ravel()]
            def detect_once() -> float:
                with BlazeFace(model, min_confidence=params.min_confidence) as detector:
                    detector.detect(frames[0])  # warm-up
                    t0 = time.perf_counter()
                    for frame in frames:
                        detector.detect(frame)
                    return time.perf_counter() - t0

            # Interleaved, best of N each: a busy machine slows both alike.
            whole, alone = [], []
            for _ in range(args.repeat):
                whole.append(run_stage_once())
                alone.append(detect_once())
            record = store.record(1, "faces")

            stage_fps, detect_fps = n_frames / min(whole), len(frames) / min(alone)
            timings = record.extra["timings_s"]
            print(f"\n== {codec}: {len(videos)} videos, {video_mb:.0f} MB, {n_frames} sampled frames "
                  f"(setup {setup_s:.0f} s, not timed)")
            print(f"whole stage (probe+decode+detect+crop+pad+store write): {min(whole):6.2f} s "
                  f"= {stage_fps:6.1f} frames/s")
            print(f"  inside the stage: decode {timings['decode']:.2f} s, detect {timings['detect']:.2f} s,"
                  f" crop+pad {timings['crop']:.2f} s; detected {record.extra['detected_fraction']:.1%}")
            print(f"detection alone on decoded frames:                      {min(alone):6.2f} s "
                  f"= {detect_fps:6.1f} frames/s")
            print(f"ratio whole stage / detection alone: {detect_fps / stage_fps:.2f}x")
            projected = DEAP_FRAMES / stage_fps
            cores = os.cpu_count() or 1
            print(f"projected for DEAP ({DEAP_FRAMES:,} frames): {projected / 60:.1f} min on one core, "
                  f"{projected / 60 / cores:.1f} min on this machine's {cores} cores "
                  f"(subjects in parallel)")


if __name__ == "__main__":
    main()
