"""``milmer finetune``: Swin-tiny fine-tuned on a face-expression dataset (an image folder, FER2013's
CSV or RAF-DB), written as a timm weights folder that ``--weights DIR`` accepts, with a model card.

    data     the three formats read into one shape, the face stage's 224 padding, the splits
    model    the recipe: model, AdamW + layer decay, warm-up + cosine, augmentation, metrics
    outputs  model.safetensors, config.json, the plots; reading a saved folder back
    run      :func:`finetune` (train, select on validation, test once, resume) and
             :func:`evaluate_saved`

Nothing heavy is imported here: the command imports :mod:`pipeline.weights.finetune.run` when it runs.
"""
