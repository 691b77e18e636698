"""k-fold cross-validation as independent fit tasks, and what train writes from their results.

``KFold(folds, shuffle=True, random_state=seed)`` splits the training images;
fold k is fitted with seed ``seed + k``, the final fit (every training image, no
validation) with ``seed``. Accuracies are percent, in the metrics and the history alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from digits.core.errors import ParamsError
from digits.core.files import atomic_file
from digits.data import data_label
from digits.training.fit import FitResult, FitTask


def fold_tasks(n_images: int, folds: int, seed: int) -> list[FitTask]:
    """``KFold(folds, shuffle=True, random_state=seed)`` over ``n_images``; fold k is seeded ``seed + k``."""
    kfold = KFold(folds, shuffle=True, random_state=seed)
    return [
        FitTask(f"fold {k}/{folds}", seed + k, train_index, val_index)
        for k, (train_index, val_index) in enumerate(kfold.split(np.arange(n_images)), start=1)
    ]


def final_task(n_images: int, seed: int) -> FitTask:
    """The final fit: every training image, no validation."""
    return FitTask("final", seed, np.arange(n_images))


def check_folds(labels: np.ndarray, folds: int) -> None:
    """Every fold must be able to hold each class: folds <= the smallest class count."""
    smallest = int(np.bincount(labels, minlength=10).min())
    if folds > smallest:
        raise ParamsError(
            f"params.yaml: cv.folds is {folds}; it must be at most {smallest}, the smallest "
            "class count in the training data (raise data.limit or lower cv.folds)"
        )


def cv_metrics(scores: Mapping[int, float], data: dict) -> dict:
    """Fold number -> accuracy (0..1) -> the metrics file: mean, std and each fold in percent."""
    percent = 100 * np.asarray(list(scores.values()))
    return {
        "accuracy_mean": round(float(percent.mean()), 4),
        "accuracy_std": round(float(percent.std()), 4),
        "fold_accuracy": {f"fold_{k}": round(float(s), 4) for k, s in zip(scores, percent, strict=True)},
        "data": data,
    }


# Keras' history key -> (column, scale): accuracies in percent like every accuracy of the
# project, and the column name says so.
HISTORY_COLUMNS = {
    "loss": ("loss", 1),
    "accuracy": ("accuracy_pct", 100),
    "val_loss": ("val_loss", 1),
    "val_accuracy": ("val_accuracy_pct", 100),
}


def history_table(histories: Mapping[int, dict[str, list[float]]], data: dict) -> pd.DataFrame:
    """Fold number -> Keras history -> the tidy per-epoch history: one row per fold and epoch;
    fold, epoch, loss, accuracy_pct, val_*, and the ``data`` it was trained on (for the legends
    of ``dvc plots diff``: revisions trained on different data say so)."""
    frames = [
        pd.DataFrame(
            {"fold": k, "epoch": np.arange(1, len(history["loss"]) + 1)}
            | {column: scale * np.asarray(history[key]) for key, (column, scale) in HISTORY_COLUMNS.items()}
        )
        for k, history in histories.items()
    ]
    return pd.concat(frames, ignore_index=True).assign(data=data_label(data))


def scores_table(metrics: dict) -> pd.DataFrame:
    """The held-out accuracy (%) of each fold in ``metrics`` (:func:`cv_metrics`)."""
    folds = metrics["fold_accuracy"]
    numbers = [int(name.removeprefix("fold_")) for name in folds]
    table = pd.DataFrame({"fold": numbers, "accuracy_pct": list(folds.values())})
    return table.assign(data=data_label(metrics["data"]))


def save_model(path: Path, result: FitResult) -> None:
    """Write a fit's model where DVC expects it, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(result.model)
