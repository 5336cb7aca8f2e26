"""Write a FER-style face-expression image folder drawn by the synthetic face, for `milmer finetune`.

    .venv/bin/python scripts/expression_folder.py OUT [--train-per-class 100] [--val-per-class 25]
        [--test-per-class 25] [--difficulty easy] [--seed 0]

Four classes: smile / frown (the valence cue generator v2 plants) x brows raised / lowered (its
arousal cue); see pipeline/synth/expression_images.py.
"""

from __future__ import annotations

import argparse

from pipeline.synth.expression_images import write_expression_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=25)
    parser.add_argument("--test-per-class", type=int, default=25)
    parser.add_argument("--difficulty", default="easy", choices=["easy", "paper", "hard"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = write_expression_folder(args.out, train_per_class=args.train_per_class,
                                     val_per_class=args.val_per_class,
                                     test_per_class=args.test_per_class,
                                     difficulty=args.difficulty, seed=args.seed)
    print(f"{args.out}: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + " images")


if __name__ == "__main__":
    main()
