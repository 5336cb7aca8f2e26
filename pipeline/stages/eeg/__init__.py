"""The eeg stage: band-pass + ICA artifact removal on a subject's continuous data.

Row: it reads the ingest arrays; with ICLabel (``ica_labeler: iclabel``) also the raw BDF at
256 Hz, read by the stage when it computes. The computation (:mod:`.filter_ica`, :mod:`.iclabel`,
their shared :mod:`.mne_tools`) needs MNE: it is imported only when the stage computes.
"""

from __future__ import annotations

import functools

from pipeline.errors import ParameterError
from pipeline.stages.eeg.params import (
    FILTER_ICA_CODE_VERSION,
    ICLABEL_NEEDS_RAW,
    ICLABEL_SFREQ,
    FilterIcaParams,
    libraries,
)
from pipeline.stages.ingest.recording import high_rate_trials
from store_schema.contract.layout import Stage
from store_schema.contract.table import Prepared, Read, Reader, StageContext, StageRow


def prepare(params: FilterIcaParams, context: StageContext, read: Reader) -> Prepared:
    """With ICLabel, the raw BDF at 256 Hz (read when the stage computes); refused on the
    128 Hz ``.dat``."""
    if params.ica_labeler != "iclabel":
        return Prepared(params=params)
    if read(Read(Stage.ingest, param="source")) != "original" or context.deap is None:
        raise ParameterError(ICLABEL_NEEDS_RAW)
    return Prepared(params=params, kwargs={"high_rate": functools.partial(
        high_rate_trials, deap=context.deap, subject=context.subject, sfreq=ICLABEL_SFREQ)})


ROW = StageRow(
    stage=Stage.eeg, params=FilterIcaParams, code_version=FILTER_ICA_CODE_VERSION,
    libraries=libraries, function="pipeline.stages.eeg.filter_ica:clean_eeg", prepare=prepare,
    reads={"eeg": Read(Stage.ingest, array="eeg"), "eog": Read(Stage.ingest, array="eog"),
           "sfreq": Read(Stage.ingest, extra="sfreq")})
