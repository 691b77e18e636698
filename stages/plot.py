"""Stage ``plot``: the tutorial's figures as PNGs, and the mean learning curve for ``dvc plots``.

Writes to ``plots/images/``: ``learning_curves.png`` (loss and accuracy, train
vs validation, every fold), ``fold_scores.png`` (box plot of the fold
accuracies), ``confusion_matrix.png`` (the final test) and
``misclassified.png`` (test digits the final model got wrong, true/predicted);
and ``plots/cv/mean_history.csv`` (train vs validation, averaged over folds).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from digits import cli  # noqa: E402
from digits.files import atomic_dir, atomic_file  # noqa: E402
from digits.layout import HISTORY, IMAGES, MEAN_HISTORY, PREDICTIONS, PREPARED, SCORES  # noqa: E402
from digits.params import load_params  # noqa: E402
from digits.prepared import load_prepared  # noqa: E402

DPI = 100


def learning_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy per epoch; train in blue, validation in orange, one line each per fold."""
    fig, axes = plt.subplots(2, 1, figsize=(6, 7), sharex=True)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for _, fold in history.groupby("fold"):
            ax.plot(fold["epoch"], fold[metric], color="tab:blue", alpha=0.7)
            ax.plot(fold["epoch"], fold[f"val_{metric}"], color="tab:orange", alpha=0.7)
        ax.set_title(f"{metric.capitalize()} (train blue, validation orange; one line per fold)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    return fig


def fold_scores(scores: pd.DataFrame) -> Figure:
    """Box plot of the fold accuracies (percent), each fold a dot."""
    fig, ax = plt.subplots(figsize=(4, 5))
    ax.boxplot(scores["accuracy"])
    ax.scatter(np.ones(len(scores)), scores["accuracy"], color="tab:orange", zorder=3)
    mean, std = scores["accuracy"].mean(), scores["accuracy"].std(ddof=0)
    ax.set_title(f"{len(scores)}-fold accuracy: {mean:.2f}% (std {std:.2f})")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_xticks([])
    fig.tight_layout()
    return fig


def confusion_matrix(predictions: pd.DataFrame) -> Figure:
    """Counts of actual (rows) vs predicted (columns) digits on the test set."""
    counts = pd.crosstab(predictions["actual"], predictions["predicted"]).reindex(
        index=range(10), columns=range(10), fill_value=0
    )
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(np.log1p(counts.to_numpy()), cmap="Blues")
    for (row, col), value in np.ndenumerate(counts.to_numpy()):
        if value:
            dark = image.norm(np.log1p(value)) > 0.6
            ax.text(col, row, value, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    accuracy = 100 * (predictions["actual"] == predictions["predicted"]).mean()
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="actual")
    ax.set_title(f"Test confusion matrix (accuracy {accuracy:.2f}%)")
    fig.tight_layout()
    return fig


def misclassified(images: np.ndarray, predictions: pd.DataFrame, count: int) -> Figure:
    """The first ``count`` test digits the model got wrong; images: [N, 28, 28, 1] in 0..1."""
    all_wrong = np.flatnonzero(predictions["actual"] != predictions["predicted"])
    wrong = all_wrong[:count]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[index, :, :, 0], cmap="gray_r")
        row = predictions.iloc[index]
        ax.set_title(f"true {row['actual']}, pred {row['predicted']}", fontsize=7)
    fig.suptitle(f"{len(wrong)} of {len(all_wrong)} misclassified test digits (of {len(predictions)})")
    fig.tight_layout()
    return fig


def mean_history(history: pd.DataFrame) -> pd.DataFrame:
    """Per epoch, the mean over folds of each history column."""
    return history.drop(columns="fold").groupby("epoch", as_index=False).mean()


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
            # No timestamps in the files, so the same data gives the same bytes.
            figure.savefig(tmp / name, dpi=DPI, metadata={"Software": None})
            plt.close(figure)
    with atomic_file(MEAN_HISTORY) as tmp:
        mean_history(history).to_csv(tmp, index=False, float_format="%.6f")
    print(f"plot: {len(figures)} figures in {IMAGES}/, mean learning curve in {MEAN_HISTORY}")


if __name__ == "__main__":
    cli.run(main)
