"""train: the Milmer heads trained on ready tensors read through :mod:`store_schema`.

* :mod:`train.config` — :class:`~train.config.TrainConfig` / :class:`~train.config.ModelConfig`,
  every default the paper's;
* :mod:`train.data` — :class:`~train.data.StoreData`: usable subjects, labels, the ``trial`` /
  ``segment`` / ``loso`` protocols, in-memory or streamed batches;
* :mod:`train.models` — :class:`~train.models.Milmer` (fusion) and its baselines (Deep CCA),
  the EEG tokenizers (raw samples, log band power, differential entropy);
* :mod:`train.trainer` — :func:`~train.trainer.run_training`: folds, validation and the epoch
  chosen on it, checkpoints, resume, outputs;
* :mod:`train.ablations` — named presets for the paper's ablation rows;
* :mod:`train.study` — named studies of those presets on one store (``milmer ablate``);
* :mod:`train.probe` — the logistic-regression log-band-power yardstick for EEG heads;
* :mod:`train.synthetic` — a store with planted signals, written stage by stage as the pipeline
  would, for tests and benchmarks.

``train`` imports ``store_schema`` and never ``pipeline`` or ``flows``.
"""
