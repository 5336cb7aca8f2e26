"""How much of a face-expression folder's classes do Swin weights keep? Pixels beside each weight set.

For an image folder that ``milmer finetune`` reads (``scripts/expression_folder.py`` writes one
from the synthetic face), this fits the probes' classifier (:func:`train.probe.fit_probe`) on the
train split and scores the test split, for:

* the images' grey pixels, downscaled to 48 x 56 (no network: how separable the classes are);
* the mean token of each ``--weights`` spec (``random:0``, a ``milmer finetune`` output folder,
  ``imagenet`` where it is cached): the tokens stage's own extractor
  (:class:`pipeline.stages.tokens.extract.TokenExtractor`) over the face stage's 224 padding, so the
  feature is the one the mean-token probe reads from a store.

A tune whose mean token scores no better than ``random:0`` here cannot raise the mean-token
probe of a store (issue 29; figures in docs/results.md, "A third try").

    .venv/bin/python benchmarks/expression_probe.py FOLDER --weights random:0 --weights TUNED_DIR

Cost on this 2-core CPU: ~140 s per weight set for 2,400 images.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from pipeline.stages.tokens.extract import TokenExtractor
from pipeline.weights.finetune.data import Split, image_at, read_dataset
from train.probe import PROBE_C, fit_probe


def pixel_features(split: Split) -> np.ndarray:
    grey = [cv2.cvtColor(image_at(ref), cv2.COLOR_RGB2GRAY) for ref in split.refs]
    return np.stack([cv2.resize(g, (48, 56), interpolation=cv2.INTER_AREA).ravel() for g in grey]
                    ).astype(np.float32)


def mean_token_features(split: Split, extractor: TokenExtractor) -> np.ndarray:
    size = extractor.batch_size
    batches = (np.stack([image_at(ref) for ref in split.refs[i:i + size]])
               for i in range(0, len(split), size))
    return np.concatenate([tokens.astype(np.float32).mean(axis=1)
                           for tokens in extractor.extract_batches(batches)])


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> list[str]:
    scores = []
    for c in PROBE_C:
        model = fit_probe(*train, c)
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
    rows = {"pixels (48x56 grey)": pixel_features}
    for spec in args.weights or ["random:0"]:
        extractor = TokenExtractor(weights=spec)
        rows[f"mean token, {spec}"] = lambda split, e=extractor: mean_token_features(split, e)
    for name, features in rows.items():
        started = time.perf_counter()
        scores = probe((features(train), labels[0]), (features(test), labels[1]))
        print(f"{name}: " + "; ".join(scores) + f" ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
