"""The heads trained on cached tokens, one file per model, in timm's shape.

* models, registered by kind (:mod:`train.models.registry`): :class:`Milmer` (``fusion``) and its
  one-modality forms :class:`MilmerEeg` (``eeg``) and :class:`MilmerFace` (``face``)
  (:mod:`~train.models.fusion`); :class:`ConcatFusion` (``concat``, :mod:`~train.models.concat`);
  :class:`DeepCca` (``deepcca``, :mod:`~train.models.deepcca`). Each one's constructor arguments
  are its config; :func:`build_model` builds the one a ``ModelConfig`` names.
* the interface the trainer calls: :class:`HeadModel` (:mod:`~train.models.base`).
* components: EEG tokenizers by name (:mod:`~train.models.eeg_tokenizers`), face normalisation
  (:mod:`~train.models.face_norm`), MIL scoring and selection (:mod:`~train.models.mil`),
  balancing (:mod:`~train.models.balance`), the token front end of fusion and concat
  (:mod:`~train.models.tokens`).
"""

from __future__ import annotations

from train.models.balance import Balancer
from train.models.base import FitStatistics, HeadModel, count_parameters
from train.models.concat import ConcatFusion
from train.models.deepcca import DeepCca
from train.models.eeg_tokenizers import EegTokenizer, create_tokenizer, tokenizer_names
from train.models.face_norm import FaceNorm
from train.models.fusion import Milmer, MilmerEeg, MilmerFace
from train.models.mil import FrameScorer, MilPooling
from train.models.registry import build_model, model_class, model_kinds, register_model

__all__ = ["Balancer", "ConcatFusion", "DeepCca", "EegTokenizer", "FaceNorm", "FitStatistics",
           "FrameScorer", "HeadModel", "MilPooling", "Milmer", "MilmerEeg", "MilmerFace",
           "build_model", "count_parameters", "create_tokenizer", "model_class", "model_kinds",
           "register_model", "tokenizer_names"]
