"""The model-ready arrays in ``data/prepared``: what preprocess writes and train reads.

Each split is an ``.npz`` with ``x``: float32 [N, 28, 28, 1] in 0..1 and
``y``: float32 one-hot [N, 10]. Read without pickle, and checked, so a corrupt
or hand-edited file stops the stage with a clear message instead of training
on garbage.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from digits.errors import DataError
from digits.mnist import IMAGE_SHAPE, NUM_CLASSES


def save_prepared(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x=x, y=y)


def load_prepared(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and check one split; return ``(x, y)``."""
    fix = "run: dvc repro -f preprocess"
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run: dvc repro preprocess") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: corrupt or not written by preprocess ({exc}); {fix}") from None
    n = len(x)
    problem = None
    if x.dtype != np.float32 or x.shape != (n, *IMAGE_SHAPE, 1):
        problem = f"x is {x.dtype} {list(x.shape)}, expected float32 [N, 28, 28, 1]"
    elif y.dtype != np.float32 or y.shape != (n, NUM_CLASSES):
        problem = f"y is {y.dtype} {list(y.shape)}, expected float32 [{n}, 10]"
    elif n == 0:
        problem = "no images"
    elif not (x.min() >= 0 and x.max() <= 1):
        problem = "pixel values outside 0..1"
    elif not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
        problem = "labels are not one-hot"
    if problem:
        raise DataError(f"{path}: corrupt or hand-edited: {problem}; {fix}")
    return x, y
