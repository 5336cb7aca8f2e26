"""The ingest stage: one subject's EEG, EOG, ratings and trial pairing from either DEAP source.

Row: its inputs are the subject's recording file (size+mtime, or content) and its own rows of
the ratings CSV; the computation (:mod:`.recording`) needs numpy and, for the BDF, MNE.
"""

from __future__ import annotations

from pipeline.stages.ingest.params import INGEST_CODE_VERSION, IngestParams, libraries
from pipeline.stages.ingest.recording import ingest_inputs
from store_schema.contract.layout import Stage
from store_schema.contract.table import Prepared, Reader, StageContext, StageRow


def prepare(params: IngestParams, context: StageContext, read: Reader) -> Prepared:
    if context.deap is None:
        raise ValueError("the ingest stage needs the DEAP folder")
    return Prepared(
        params=params,
        inputs=ingest_inputs(deap=context.deap, subject=context.subject, params=params,
                             content_hash=context.content_hash),
        kwargs={"deap": context.deap, "subject": context.subject})


ROW = StageRow(
    stage=Stage.ingest, params=IngestParams, code_version=INGEST_CODE_VERSION,
    libraries=libraries, function="pipeline.stages.ingest.recording:ingest", prepare=prepare)
