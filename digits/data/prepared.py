"""The model-ready arrays in ``data/prepared``: how preprocess makes them, and how train reads them.

Each split is an ``.npz`` with ``x``: float32 [N, 28, 28, 1] in 0..1 and
``y``: float32 one-hot [N, 10]. Read without pickle, and checked, so a corrupt
or hand-edited file stops the stage with a clear message instead of training
on garbage.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from digits.core.errors import RESTORE, DataError
from digits.core.mnist import IMAGE_SHAPE, NUM_CLASSES, Split


def prepare(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and labels [N] -> x float32 [N, 28, 28, 1] in 0..1, y one-hot [N, 10]."""
    x = split.images.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    y = np.eye(NUM_CLASSES, dtype=np.float32)[split.labels]
    return x, y


def stratified_subset(split: Split, limit: int, seed: int) -> Split:
    """``limit`` images drawn without replacement, keeping the class proportions."""
    n = len(split.labels)
    if limit >= n:
        return split
    if n - limit < NUM_CLASSES:  # the part left out must hold every class too
        raise DataError(
            f"params.yaml: data.limit is {limit}; with {n} training images it must be at most "
            f"{n - NUM_CLASSES} or null"
        )
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(len(split.labels)), train_size=limit, stratify=split.labels, random_state=seed
    )
    keep.sort()  # keep the original order
    return Split(split.images[keep], split.labels[keep])


def save_prepared(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x=x, y=y)


def load_prepared(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and check one split; return ``(x, y)``."""
    fix = "run: dvc repro -f preprocess"
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {RESTORE}") from None
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


@contextmanager
def load_shared(path: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`load_prepared`, as read-only memory-mapped arrays, for as long as the block runs.

    Worker processes map the same file pages instead of each getting (and this process
    keeping) a private copy: joblib passes a memory-mapped array by its file name.
    """
    x, y = load_prepared(path)
    with tempfile.TemporaryDirectory(prefix="digits-prepared-") as folder:
        files = [Path(folder) / "x.npy", Path(folder) / "y.npy"]
        for file, array in zip(files, (x, y), strict=True):
            np.save(file, array)
        del x, y  # from here on, only the mapped pages
        yield tuple(np.load(file, mmap_mode="r") for file in files)
