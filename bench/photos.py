"""How well ``predict`` reads photos and scans: the photo-like corpus of MNIST test digits, per kind.

    python bench/photos.py [--model models/model.keras] [--per-kind 200] [--save DIR]

The digits are drawn (seeded) from the 10,000 MNIST test images, in data/raw after
``make run``, or in MNIST_DIR. Each becomes one photo or scan of every kind of
``digits.use.corpus``; each photo goes through ``predict``'s preprocessing and the model.
Prints a Markdown table: per kind the accuracy, how often the answer was "unsure", and the
preprocessing time per image; the first row is the same digits given to the model as they
are in MNIST. ``--save`` also writes the images, to look at.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from digits.core import cli
from digits.core.errors import DataError
from digits.core.idx import read_idx
from digits.core.layout import FINAL_MODEL, RAW
from digits.core.mnist import FILES
from digits.use.classifier import Classifier
from digits.use.corpus import KINDS, photos
from digits.use.photo import open_image, to_mnist


def test_digits() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test images and labels, from data/raw or MNIST_DIR."""
    folders = [RAW] + ([Path(os.environ["MNIST_DIR"])] if os.environ.get("MNIST_DIR") else [])
    for folder in folders:
        for suffix in ("", ".gz"):
            images, labels = (folder / f"{name}{suffix}" for name in FILES["test"])
            if images.is_file() and labels.is_file():
                return read_idx(images, 3), read_idx(labels, 1)
    raise DataError("no MNIST test files in data/raw or MNIST_DIR; run make run, or set MNIST_DIR")


def row(name: str, correct: list[bool], unsure: list[bool], seconds: float | None) -> str:
    timing = f"{seconds / len(correct) * 1000:.0f}" if seconds is not None else ""
    return (
        f"| {name} | {len(correct)} | {np.mean(correct):.1%} | {np.mean(unsure):.1%} | {timing} |"
    ).replace("%", " %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=FINAL_MODEL, help=f"default: {FINAL_MODEL}")
    parser.add_argument("--per-kind", type=int, default=200, help="digits per kind (default 200)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="also write the images to this folder")
    args = parser.parse_args()

    images, labels = test_digits()
    chosen = np.random.default_rng(args.seed).choice(len(images), args.per_kind, replace=False)
    images, labels = images[chosen], labels[chosen]
    classifier = Classifier.load(args.model)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    print(f"{args.per_kind} MNIST test digits per kind, model {args.model}\n")
    print("| kind | images | correct | unsure | ms per image |\n| --- | ---: | ---: | ---: | ---: |")
    answers = classifier.classify(images.astype(np.float32) / 255)
    correct = [a.ranking[0][0] == label for a, label in zip(answers, labels, strict=True)]
    print(row("MNIST as is (28x28)", correct, [a.unsure for a in answers], None))
    every_correct, every_unsure = [], []
    for kind in args.kinds:
        digits, seconds = [], 0.0
        for photo in photos(images, labels, (kind,), args.seed):
            if args.save:
                (args.save / photo.name).write_bytes(photo.data)
            start = time.perf_counter()
            digits.append(to_mnist(open_image(photo.data, photo.name), photo.name))
            seconds += time.perf_counter() - start
        answers = classifier.classify(np.stack(digits))
        correct = [a.ranking[0][0] == label for a, label in zip(answers, labels, strict=True)]
        unsure = [a.unsure for a in answers]
        print(row(kind, correct, unsure, seconds))
        sys.stdout.flush()
        every_correct += correct
        every_unsure += unsure
    print(row("**all photos**", every_correct, every_unsure, None))


if __name__ == "__main__":
    cli.run(main)
