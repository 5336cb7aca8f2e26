"""The faces stage: BlazeFace detection on the frames of each segment, boxes grown by a margin,
crops center-padded to 224x224, and which frames had no face.

Row: its inputs are the segment table, every face video of the subject (size+mtime, or content;
a missing file counts as ``missing``) and the model's sha256 (not its path: moving the file
recomputes nothing). The computation (:mod:`.detect`) needs OpenCV and MediaPipe: it is imported
only when the stage computes.
"""

from __future__ import annotations

from pipeline.readers.deap import find_layout
from pipeline.readers.face_truth import face_truth_dir
from pipeline.readers.video import expected_videos
from pipeline.stages.faces.params import FACES_CODE_VERSION, FacesParams, libraries, problem_lines
from pipeline.weights.face_model import resolve_face_model
from store_schema.contract.fingerprint import file_fingerprint
from store_schema.contract.layout import Stage
from store_schema.contract.table import Prepared, Read, Reader, StageContext, StageRow


def prepare(params: FacesParams, context: StageContext, read: Reader) -> Prepared:
    model_path, sha256 = resolve_face_model(params.model_path)
    video_dir = find_layout(context.deap).video_dir if context.deap is not None else None
    videos = expected_videos(video_dir, context.subject,
                             read(Read(Stage.segment, array="presentation_trial")))
    return Prepared(
        params=params.model_copy(update={"model_path": None}),
        inputs={"model": f"sha256:{sha256}",
                **{f"video:{name}": file_fingerprint(path, content=context.content_hash)
                   if path is not None and path.is_file() else "missing"
                   for name, path in videos.items()}},
        kwargs={"subject": context.subject, "video_dir": video_dir, "model_path": model_path,
                "model_sha256": sha256, "truth_dir": face_truth_dir(context.deap)})


ROW = StageRow(
    stage=Stage.faces, params=FacesParams, code_version=FACES_CODE_VERSION, libraries=libraries,
    function="pipeline.stages.faces.detect:faces_stage", prepare=prepare, warnings=problem_lines,
    reads={"trial_index": Read(Stage.segment, array="trial_index"),
           "presentation_trial": Read(Stage.segment, array="presentation_trial"),
           "start_s": Read(Stage.segment, array="start_s"),
           "trial_seconds": Read(Stage.ingest, extra="trial_seconds"),
           "window_s": Read(Stage.segment, param="window_s")})
