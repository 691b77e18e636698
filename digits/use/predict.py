"""Classify your own images of handwritten digits with the trained model.

    python -m digits.use.predict photo.jpg scan.png [--top 3] [--json] [--model models/model.keras]

Each image is made into an MNIST-style digit first (see ``digits.use.photo``). An image that
cannot be read is reported in one line and the others are still classified; the exit
status is then 1. When the model is unsure it says so: ``unsure: 4 or 9``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from digits.core import cli
from digits.core.errors import DataError
from digits.core.layout import FINAL_MODEL
from digits.use.classifier import Answer, Classifier
from digits.use.photo import open_image, to_mnist


def describe(answer: Answer, top: int) -> str:
    """One line for a person: ``7 (99.1%)``, or ``unsure: 4 or 9; 4 (48.1%), 9 (45.0%)``."""
    shown = max(top, 2) if answer.unsure else top
    ranking = ", ".join(f"{d} ({p:.1%})" for d, p in answer.ranking[:shown])
    return f"{answer.label}; {ranking}" if answer.unsure else ranking


def printable(path: Path) -> str:
    """``path`` for a line of text: what would break or reorder the line (a newline, U+202E) escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(path))


def record(image: Path, answer: Answer, top: int) -> dict:
    """The JSON object for one classified image."""
    ranked = [{"digit": d, "probability": round(p, 6)} for d, p in answer.ranking[:top]]
    return {"image": str(image), "predictions": ranked, "unsure": answer.unsure}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits.use.predict", description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="images (PNG, JPEG, TIFF...), one digit each")
    parser.add_argument(
        "--top",
        type=int,
        default=1,
        choices=range(1, 11),
        metavar="K",
        help="show the K most likely digits (1-10, default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--model", type=Path, default=FINAL_MODEL, help=f"default: {FINAL_MODEL}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        classify(args)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; predict writes no files, so none to speak of
        sys.exit("predict: interrupted")


def classify(args: argparse.Namespace) -> None:
    """Classify ``args.images`` and print one line (or JSON object) per image."""
    digits: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for i, path in enumerate(args.images):
        try:
            digits[i] = to_mnist(open_image(path, printable(path)), printable(path))
        except DataError as exc:
            errors[i] = str(exc)
    answers: dict[int, Answer] = {}
    if digits:  # TensorFlow starts only if there is something to classify
        classifier = Classifier.load(args.model)
        answers = dict(zip(digits, classifier.classify(np.stack(list(digits.values()))), strict=True))
    for i, path in enumerate(args.images):
        if i in errors:
            print(f"predict: error: {errors[i]}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": str(path), "error": errors[i]}))
        elif args.json:
            print(json.dumps(record(path, answers[i], args.top)))
        else:
            print(f"{printable(path)}: {describe(answers[i], args.top)}")
    sys.stdout.flush()
    if errors:
        sys.exit(1)


def run() -> None:
    """The ``digits-predict`` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
