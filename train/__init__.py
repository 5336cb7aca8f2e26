"""train: the Milmer heads trained on ready tensors read through :mod:`store_schema`.

* :mod:`train.config` — :class:`~train.config.TrainConfig` / :class:`~train.config.ModelConfig`,
  every default the paper's;
* :mod:`train.data` — :class:`~train.data.StoreData`: usable subjects, labels, the ``trial`` /
  ``segment`` / ``loso`` protocols, in-memory or streamed batches;
* :mod:`train.models` — :class:`~train.models.Milmer` (fusion) and its baselines;
* :mod:`train.trainer` — :func:`~train.trainer.run_training`: folds, checkpoints, resume, outputs;
* :mod:`train.ablations` — named presets for the paper's ablation rows;
* :mod:`train.synthetic` — a store with planted signals, for tests and benchmarks.

``train`` imports ``store_schema`` and never ``pipeline`` or ``flows``.
"""
