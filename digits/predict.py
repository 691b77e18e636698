"""Classify your own images of handwritten digits with the trained model.

    python -m digits.predict photo.jpg scan.png [--top 3] [--json]

Each image is turned into an MNIST-style digit the way MNIST itself was made:
grayscale, light ink on a dark background (inverted if the paper is light),
cropped to the ink, scaled to fit 20x20 keeping the aspect ratio, and placed
in a 28x28 field so that its centre of mass is at the centre.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from digits import cli
from digits.errors import DataError
from digits.layout import FINAL_MODEL

MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger is refused before decoding
MIN_CONTRAST = 32  # of 255: less between paper and ink is a blank image
FIT = 20  # MNIST digits fit in 20x20 ...
SIZE = 28  # ... centred by centre of mass in 28x28


def open_image(path: Path) -> Image.Image:
    """Open ``path`` as an image, refusing what is not one or is too large to decode safely."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file; give a PNG or JPEG image of a digit")
        image = Image.open(path)  # reads the header only
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{path}: too many pixels to decode safely; crop or shrink the image") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image this tool can read; give a PNG or JPEG") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,}; "
            "crop or shrink the image to the digit"
        )
    if width == 0 or height == 0:
        raise DataError(f"{path}: zero-size image; give an image of a digit")
    try:
        image.load()
    except OSError as exc:
        raise DataError(f"{path}: damaged image ({exc}); give a complete PNG or JPEG") from None
    return image


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Grayscale float [H, W] in 0..255; transparent areas count as white paper."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float32)


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """Any image of one digit -> float32 [28, 28] in 0..1, light ink on black, as in MNIST."""
    gray = to_grayscale(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    ink = gray - paper if paper < 128 else paper - gray  # ink is now the positive part
    ink = np.clip(ink, 0, None)
    if ink.max() < MIN_CONTRAST:
        raise DataError(f"{name}: blank image, no digit found; give an image with a visible digit")
    ink /= ink.max()

    rows = np.flatnonzero((ink > 0.2).any(axis=1))
    cols = np.flatnonzero((ink > 0.2).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    height, width = crop.shape
    scale = FIT / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(new_size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0, 1)

    # Shift so the centre of mass lands on the centre of the 28x28 field.
    ys, xs = np.indices(digit.shape)
    mass = digit.sum()
    top = int(round(SIZE / 2 - (ys * digit).sum() / mass))
    left = int(round(SIZE / 2 - (xs * digit).sum() / mass))
    top = min(max(top, 0), SIZE - digit.shape[0])
    left = min(max(left, 0), SIZE - digit.shape[1])
    field = np.zeros((SIZE, SIZE), np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field


def predict(model, digits: np.ndarray, top: int) -> list[list[tuple[int, float]]]:
    """digits [N, 28, 28] -> per digit the ``top`` (digit, probability) pairs, best first."""
    from digits.model import INFERENCE_BATCH_SIZE

    probabilities = model.predict(digits[..., np.newaxis], batch_size=INFERENCE_BATCH_SIZE, verbose=0)
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :top]
    return [[(int(d), float(p[d])) for d in row] for row, p in zip(best, probabilities, strict=True)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits.predict", description=__doc__.split("\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="PNG or JPEG images, one digit each")
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
    digits = np.stack([to_mnist(open_image(path), str(path)) for path in args.images])
    from digits.model import load_model  # TensorFlow starts only once the images are good

    model = load_model(args.model)
    for path, guesses in zip(args.images, predict(model, digits, args.top), strict=True):
        if args.json:
            ranked = [{"digit": d, "probability": round(p, 6)} for d, p in guesses]
            print(json.dumps({"image": str(path), "predictions": ranked}))
        else:
            print(f"{path}: " + ", ".join(f"{d} ({p:.1%})" for d, p in guesses))
    sys.stdout.flush()


def run() -> None:
    """The ``digits-predict`` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
