"""The tokens stage: final-stage Swin-tiny tokens (49 x 768, float16) of every face crop,
computed once, offline.

Row: its inputs are the faces stage's crops (read in slices) and the weights' content
fingerprint (never their path); the recorded params are :class:`TokensParams`, the run's
:class:`TokensSettings` resolved on the machine that computes. The computation (:mod:`.extract`)
needs torch and timm: it is imported only when the stage computes.
"""

from __future__ import annotations

from pipeline.errors import WeightsError
from pipeline.stages.tokens.params import (
    TOKENS_CODE_VERSION,
    TokensParams,
    TokensSettings,
    libraries,
)
from pipeline.weights.swin_source import HOW_TO_GIVE_WEIGHTS
from store_schema.contract.layout import Stage
from store_schema.contract.table import Prepared, Read, Reader, StageContext, StageRow


def prepare(settings: TokensSettings, context: StageContext, read: Reader) -> Prepared:
    if settings.weights is None:
        raise WeightsError(f"the token stage needs Swin weights and none were given: {HOW_TO_GIVE_WEIGHTS}")
    params = TokensParams.from_weights(settings.weights, device=settings.device, amp=settings.amp,
                                       batch_size=settings.batch_size)
    return Prepared(params=params, inputs={"weights": params.weights_fingerprint},
                    kwargs={"weights": settings.weights})


ROW = StageRow(
    stage=Stage.tokens, params=TokensSettings, code_version=TOKENS_CODE_VERSION,
    libraries=libraries, function="pipeline.stages.tokens.extract:subject_tokens",
    prepare=prepare, reads={"crops": Read(Stage.faces, array="crops", lazy=True)})
