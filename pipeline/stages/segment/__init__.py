"""The segment stage: fixed-length windows of cleaned EEG after each trial's baseline, and the
segment table (one row per window). Row: it reads the cleaned EEG and the ingest's ratings and
trial pairing; the computation (:mod:`.windows`) is numpy only.
"""

from __future__ import annotations

from pipeline.stages.segment.params import SEGMENT_CODE_VERSION, SegmentParams, libraries
from store_schema.contract.layout import Stage
from store_schema.contract.table import Read, StageRow

ROW = StageRow(
    stage=Stage.segment, params=SegmentParams, code_version=SEGMENT_CODE_VERSION,
    libraries=libraries, function="pipeline.stages.segment.windows:segment",
    reads={"eeg": Read(Stage.eeg, array="eeg"), "ratings": Read(Stage.ingest, array="ratings"),
           "experiment_id": Read(Stage.ingest, array="experiment_id"),
           "presentation_trial": Read(Stage.ingest, array="presentation_trial"),
           "sfreq": Read(Stage.ingest, extra="sfreq")})
