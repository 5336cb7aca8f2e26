"""How much of a face-expression folder's classes do Swin weights keep? Pixels beside each weight set.

For an image folder that ``milmer finetune`` reads (``scripts/expression_folder.py`` writes one
from the synthetic face), this fits a logistic regression on the train split and scores the test
split, for:

* the images' grey pixels, downscaled to 48 x 56 (no network: how separable the classes are);
* the pooled 768 features of Swin-tiny under each ``--weights`` spec (``random:0``, a
  ``milmer finetune`` output folder, ``imagenet`` where it is cached), bf16 where the CPU has it.

Every image goes through the face stage's 224 padding first, as fine-tuning and the tokens stage
see it. A tune whose features score no better than ``random:0`` here cannot raise the mean-token
probe of a store (issue 29; figures in docs/results.md, "A third try").

    .venv/bin/python benchmarks/expression_probe.py FOLDER --weights random:0 --weights TUNED_DIR

Cost on this 2-core CPU: ~140 s per weight set for 2,400 images.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.stages.tokens.params import cpu_has_native_bf16
from pipeline.weights.finetune.data import Split, image_at, read_dataset
from pipeline.weights.finetune.model import to_tensor
from pipeline.weights.swin import check_weights, load_backbone
from pipeline.weights.swin_source import MODEL_NAME

C_GRID = (0.01, 0.1, 1.0)


def pixel_features(split: Split) -> np.ndarray:
    grey = [cv2.cvtColor(image_at(ref), cv2.COLOR_RGB2GRAY) for ref in split.refs]
    return np.stack([cv2.resize(g, (48, 56), interpolation=cv2.INTER_AREA).ravel() for g in grey]
                    ).astype(np.float32)


def swin_features(split: Split, weights: str, batch: int = 32) -> np.ndarray:
    backbone, norm = load_backbone(check_weights(weights, model_name=MODEL_NAME), model_name=MODEL_NAME)
    backbone.reset_classifier(0)
    backbone.eval()
    dtype = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    out = []
    for start in range(0, len(split), batch):
        images = [image_at(ref) for ref in split.refs[start:start + batch]]
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out.append(backbone(to_tensor(images, norm, torch.device("cpu"))).float().numpy())
    return np.concatenate(out)


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> list[str]:
    scores = []
    for c in C_GRID:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000)).fit(*train)
        scores.append(f"C={c}: train {model.score(*train):.3f} test {model.score(*test):.3f}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="an image folder with train/ and test/ (milmer finetune's layout)")
    parser.add_argument("--weights", action="append", default=[],
                        help="a --weights spec; repeat for several (default: random:0)")
    args = parser.parse_args()
    data = read_dataset(args.folder, log=lambda line: None)
    train, test = data.splits["train"], data.splits["test"]
    labels = np.asarray(train.labels), np.asarray(test.labels)
    print(f"{args.folder}: {len(train)} train / {len(test)} test images, {len(data.classes)} classes "
          f"(chance {np.bincount(labels[1]).max() / len(test):.3f})")
    rows = {"pixels (48x56 grey)": lambda split: pixel_features(split)}
    for spec in args.weights or ["random:0"]:
        rows[f"Swin-tiny {spec}"] = lambda split, spec=spec: swin_features(split, spec)
    for name, features in rows.items():
        started = time.perf_counter()
        scores = probe((features(train), labels[0]), (features(test), labels[1]))
        print(f"{name}: " + "; ".join(scores) + f" ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
