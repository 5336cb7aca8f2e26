"""train: the Milmer heads trained on ready tensors read through :mod:`store_schema`.

* :mod:`train.dataset` — :class:`~train.dataset.StoreDataset`, the public reader: a store as a
  map-style ``torch`` Dataset for models of one's own (``from train import StoreDataset``);
* :mod:`train.splits` — split manifests (``RUN_DIR/splits.json``, ``--splits``);
* :mod:`train.config` — :class:`~train.config.TrainConfig` / :class:`~train.config.ModelConfig`,
  every default the paper's;
* :mod:`train.data` — :class:`~train.data.StoreData`: usable subjects, labels, the ``trial`` /
  ``segment`` / ``loso`` protocols, in-memory or streamed batches;
* :mod:`train.models` — one file per model (:class:`~train.models.Milmer` fusion with its
  EEG-only and face-only forms, concatenation, Deep CCA), registered by kind; their shared
  components (EEG tokenizers, face normalisation, MIL, balancing); the interface the trainer
  calls (:class:`~train.models.HeadModel`);
* :mod:`train.trainer` — :func:`~train.trainer.run_training`: folds, validation and the epoch
  chosen on it, early stopping, checkpoints, resume, outputs;
* :mod:`train.schedule` — the cosine lr schedule, the validation-chosen epoch, early stopping;
* :mod:`train.per_subject` — one model per subject (``per_subject``): a run per subject, the mean
  ± std over subjects;
* :mod:`train.backbone_loop` — Swin-tiny trained in the loop from the stored crops
  (``finetune_backbone``), its starting weights handed in by the caller, its export;
* :mod:`train.readers` — where the face input lives in the store, DataLoader reader workers;
* :mod:`train.metrics` — accuracy, F1, confusion and per-subject figures, and their plots;
* :mod:`train.ablations` — named presets for the paper's ablation rows;
* :mod:`train.study` — named studies of those presets on one store (``milmer ablate``);
* :mod:`train.protocols` — ``milmer ablate paper-protocol``: the paper's protocol (leaky,
  labelled) beside ours, and the optimism of the published protocol;
* :mod:`train.probe` — the logistic-regression log-band-power yardstick for EEG heads;
* :mod:`train.synthetic` — a store with planted signals, written stage by stage as the pipeline
  would, for tests and benchmarks.

``train`` imports ``store_schema`` and never ``pipeline`` or ``flows``.
"""

from typing import Any

__all__ = ["StoreDataset"]


def __getattr__(name: str) -> Any:
    """``from train import StoreDataset``, imported on first use (``import train.config`` stays
    free of torch and Zarr)."""
    if name == "StoreDataset":
        from train.dataset import StoreDataset

        return StoreDataset
    raise AttributeError(f"module 'train' has no attribute {name!r}")
