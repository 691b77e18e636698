"""Stage ``train``: k-fold cross-validation of the CNN, and the final fit on all training images.

The k fold fits and the final fit are k + 1 independent tasks, run side by side
(``cv.n_jobs`` local processes, or a Dask cluster with ``cv.backend: dask``);
``evaluate`` then only evaluates. Writes:

* ``metrics/cv.json``: mean and std of the fold accuracies in percent (numpy's
  population std, as the tutorial reports them), each fold's, and the data used;
* ``plots/cv/history.csv``: per fold and epoch, loss and accuracy (%) and their validation twins;
* ``plots/cv/scores.csv``: the held-out accuracy (%) of each fold;
* ``models/folds/fold_<k>.keras`` (for the fold ensemble) and ``models/model.keras``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from digits import cli
from digits.errors import ParamsError, PipelineError
from digits.files import atomic_dir, atomic_file, write_json
from digits.layout import CV_METRICS, FINAL_MODEL, FOLD_MODELS, HISTORY, PREPARED, RAW, SCORES
from digits.mnist import read_source
from digits.params import Params, load_params
from digits.prepared import load_prepared
from digits.training import FitResult, FitTask, fit


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


def run_tasks(tasks: list[FitTask], x: np.ndarray, y: np.ndarray, params: Params) -> list[FitResult]:
    """Run the fits in parallel; results come back in the order of ``tasks``."""
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    if params.cv.backend == "dask":
        from distributed import Client

        address = params.cv.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
        if not address:
            raise ParamsError(
                "params.yaml: cv.backend is 'dask' but cv.scheduler is null and "
                "DASK_SCHEDULER_ADDRESS is unset; give the scheduler address (tcp://host:8786)"
            )
        with Client(address), parallel_config("dask"):
            return Parallel()(delayed(fit)(task, x, y, params) for task in tasks)
    n_jobs = min(params.cv.n_jobs or os.cpu_count() or 1, len(tasks))
    try:
        return Parallel(n_jobs=n_jobs, backend="loky")(delayed(fit)(task, x, y, params) for task in tasks)
    except TerminatedWorkerError:
        raise PipelineError(
            f"a training worker died (out of memory?) with cv.n_jobs={n_jobs}; "
            "lower cv.n_jobs or data.limit and run it again"
        ) from None


def cv_metrics(scores: list[float], data: dict) -> dict:
    """Fold accuracies (0..1) -> the metrics file: mean, std and each fold in percent."""
    percent = 100 * np.asarray(scores)
    return {
        "accuracy_mean": round(float(percent.mean()), 4),
        "accuracy_std": round(float(percent.std()), 4),
        "fold_accuracy": {f"fold_{k}": round(float(s), 4) for k, s in enumerate(percent, start=1)},
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


def history_table(results: list[FitResult]) -> pd.DataFrame:
    """Tidy per-epoch history: one row per fold and epoch; fold, epoch, loss, accuracy_pct, val_*."""
    frames = [
        pd.DataFrame(
            {"fold": k, "epoch": np.arange(1, len(r.history["loss"]) + 1)}
            | {column: scale * np.asarray(r.history[key]) for key, (column, scale) in HISTORY_COLUMNS.items()}
        )
        for k, r in enumerate(results, start=1)
    ]
    return pd.concat(frames, ignore_index=True)


def save_model(path: Path, weights: list[np.ndarray], params: Params) -> None:
    from digits.model import build_model

    model = build_model(params.model.arch, params.optimizer.learning_rate, params.optimizer.momentum)
    model.set_weights(weights)
    with atomic_file(path) as tmp:
        model.save(tmp)


def main() -> None:
    params = load_params()
    x, y = load_prepared(PREPARED / "train.npz")
    check_folds(y.argmax(axis=1), params.cv.folds)
    source = read_source(RAW)["source"]

    folds = fold_tasks(len(x), params.cv.folds, params.seed)
    # The final fit is the longest task: start it first so no core idles at the end.
    final, *fold_results = run_tasks([final_task(len(x), params.seed), *folds], x, y, params)

    scores = [r.val_accuracy for r in fold_results]
    metrics = cv_metrics(scores, {"source": source, "images": len(x)})
    with atomic_dir(FOLD_MODELS) as tmp:
        for k, result in enumerate(fold_results, start=1):
            save_model(tmp / f"fold_{k}.keras", result.weights, params)
    save_model(FINAL_MODEL, final.weights, params)
    with atomic_file(HISTORY) as tmp:
        history_table(fold_results).to_csv(tmp, index=False, float_format="%.6f")
    with atomic_file(SCORES) as tmp:
        fold_scores = {"fold": range(1, len(scores) + 1), "accuracy_pct": metrics["fold_accuracy"].values()}
        pd.DataFrame(fold_scores).to_csv(tmp, index=False)
    write_json(CV_METRICS, metrics)
    print(
        f"train: {params.cv.folds}-fold accuracy {metrics['accuracy_mean']:.2f}% "
        f"(std {metrics['accuracy_std']:.2f}) on {len(x):,} {source} images; "
        f"fit times {', '.join(f'{r.seconds:.0f}s' for r in [*fold_results, final])}"
    )


if __name__ == "__main__":
    cli.run(main)
