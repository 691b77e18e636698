"""Stage ``plot``: the tutorial's figures as PNGs, and the mean learning curve for ``dvc plots``.

Writes to ``plots/images/``: ``learning_curves.png`` (loss and accuracy, train
vs validation, every fold), ``fold_scores.png`` (box plot of the fold
accuracies), ``confusion_matrix.png`` (the final test, as percent of each actual
digit) and ``misclassified.png`` (test digits the final model got wrong,
true/predicted); and ``plots/cv/mean_history.csv`` (train vs validation,
averaged over folds, one row per split and epoch). Accuracies are in percent.
"""

from __future__ import annotations

import pandas as pd

from digits.core import cli
from digits.core.files import atomic_dir, atomic_file
from digits.core.layout import HISTORY, IMAGES, MEAN_HISTORY, PREDICTIONS, PREPARED, SCORES
from digits.core.params import load_params
from digits.data.prepared import load_prepared
from digits.reporting.figures import (
    confusion_matrix,
    fold_scores,
    learning_curves,
    mean_history,
    misclassified,
    save,
)


def main() -> None:
    params = load_params()
    history = pd.read_csv(HISTORY)
    scores = pd.read_csv(SCORES)
    predictions = pd.read_csv(PREDICTIONS)
    x_test, _ = load_prepared(PREPARED / "test.npz")
    figures = {
        "learning_curves.png": learning_curves(history),
        "fold_scores.png": fold_scores(scores),
        "confusion_matrix.png": confusion_matrix(predictions),
        "misclassified.png": misclassified(x_test, predictions, params.plot.misclassified),
    }
    with atomic_dir(IMAGES) as tmp:
        for name, figure in figures.items():
            save(figure, tmp / name)
    with atomic_file(MEAN_HISTORY) as tmp:
        mean_history(history).to_csv(tmp, index=False, float_format="%.6f")
    print(f"plot: {len(figures)} figures in {IMAGES}/, mean learning curve in {MEAN_HISTORY}")


if __name__ == "__main__":
    cli.run(main)
