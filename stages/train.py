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

from digits.core import cli
from digits.core.files import atomic_dir, atomic_file, write_json
from digits.core.layout import CV_METRICS, FINAL_MODEL, FOLD_MODELS, HISTORY, PREPARED, RAW, SCORES
from digits.core.mnist import read_source
from digits.core.params import load_params
from digits.data.prepared import load_shared
from digits.training.cv import (
    check_folds,
    cv_metrics,
    final_task,
    fold_tasks,
    history_table,
    save_model,
    scores_table,
)
from digits.training.live import LiveRun
from digits.training.parallel import run_tasks


def main() -> None:
    params = load_params()
    source = read_source(RAW)["source"]
    with load_shared(PREPARED / "train.npz") as (x, y):
        images = len(x)
        data = {"source": source, "images": images}
        check_folds(y.argmax(axis=1), params.cv.folds)
        # The final fit is the longest task: start it first so no core idles at the end.
        tasks = [final_task(images, params.seed), *fold_tasks(images, params.cv.folds, params.seed)]
        # While the fits run: the CV files as they grow, and a progress line.
        with LiveRun(tasks, params.epochs, data) as live:
            final, *fold_results = run_tasks(tasks, x, y, params, live)

    folds = dict(enumerate(fold_results, start=1))
    metrics = cv_metrics({k: r.val_accuracy for k, r in folds.items()}, data)
    with atomic_dir(FOLD_MODELS) as tmp:
        for k, result in folds.items():
            save_model(tmp / f"fold_{k}.keras", result)
    save_model(FINAL_MODEL, final)
    with atomic_file(HISTORY) as tmp:
        histories = {k: r.history for k, r in folds.items()}
        history_table(histories, data).to_csv(tmp, index=False, float_format="%.6f")
    with atomic_file(SCORES) as tmp:
        scores_table(metrics).to_csv(tmp, index=False)
    write_json(CV_METRICS, metrics)
    print(
        f"train: {params.cv.folds}-fold accuracy {metrics['accuracy_mean']:.2f}% "
        f"(std {metrics['accuracy_std']:.2f}) on {images:,} {source} images; "
        f"fit times {', '.join(f'{r.seconds:.0f}s' for r in [*fold_results, final])}"
    )


if __name__ == "__main__":
    cli.run(main)
