"""train: the Milmer heads trained on ready tensors read through :mod:`store_schema`.

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
* :mod:`train.per_subject` — one model per subject (``per_subject``): a run per subject, the mean
  ± std over subjects;
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
