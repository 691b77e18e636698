"""The pipeline's figures (matplotlib), from its plot data; accuracies in percent.

``learning_curves`` (loss and accuracy, train vs validation, every fold),
``fold_scores`` (the fold accuracies), ``confusion_matrix`` (the final test, as
percent of each actual digit), ``misclassified`` (test digits the final model got
wrong), and ``mean_history`` (train vs validation averaged over folds, for ``dvc plots``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator  # noqa: E402

DPI = 100
# `dvc plots diff` shows both revisions' PNGs side by side on one line: each figure
# stays at most this wide (at DPI) so that two fit a 1,400 px window.
MAX_WIDTH_PX = 640
SPLIT_COLOURS = {"train": "tab:blue", "validation": "tab:orange"}


def learning_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy (%) per epoch: train and validation, one line each per fold."""
    fig, axes = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True)
    folds = history["fold"].nunique()
    for ax, metric, label in zip(axes, ("loss", "accuracy_pct"), ("loss", "accuracy (%)"), strict=True):
        for _, fold in history.groupby("fold"):
            # Markers too: a single epoch is a point, not a line.
            for column, split in ((metric, "train"), (f"val_{metric}", "validation")):
                ax.plot(fold["epoch"], fold[column], color=SPLIT_COLOURS[split], alpha=0.7, marker="o", ms=3)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    # Above the plots, where it never hides a line.
    axes[0].legend(
        [Line2D([], [], color=colour, marker="o", ms=3) for colour in SPLIT_COLOURS.values()],
        [f"{split} (one line per fold)" for split in SPLIT_COLOURS],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    axes[-1].set_xlabel("epoch")
    # Whole epochs only, about ten at most, also when there is one; as the Vega plots do.
    epochs = int(history["epoch"].max())
    axes[-1].set_xlim(0.75, epochs + 0.25)
    axes[-1].xaxis.set_major_locator(FixedLocator(range(1, epochs + 1, -(-epochs // 10))))
    fig.suptitle(
        f"Learning curves, {folds} folds\nvalidation flat or rising while train improves = overfitting",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def fold_scores(scores: pd.DataFrame) -> Figure:
    """Box plot of the fold accuracies (percent), each fold a dot, the mean a dashed line."""
    accuracy = scores["accuracy_pct"]
    mean, std = accuracy.mean(), accuracy.std(ddof=0)
    fig, ax = plt.subplots(figsize=(4.4, 4.5))
    ax.boxplot(accuracy, widths=0.4, medianprops={"color": "black"})
    ax.scatter(np.ones(len(scores)), accuracy, color="tab:orange", zorder=3, label="one fold")
    ax.axhline(mean, color="tab:blue", linestyle="--", label=f"mean {mean:.2f}%")
    ax.set_title(
        f"{len(scores)}-fold CV accuracy: {mean:.2f}% ± {std:.2f}\nthe spread: how much the split matters",
        fontsize=10,
    )
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_xticks([])
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def class_percent(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Percent of each actual digit's test images per predicted digit (rows: actual); and the row counts."""
    counts = pd.crosstab(predictions["actual"], predictions["predicted"]).reindex(
        index=range(10), columns=range(10), fill_value=0
    )
    totals = counts.sum(axis=1)
    return 100 * counts.div(totals.where(totals > 0, 1), axis=0), totals


# As in the Vega confusion plot (.dvc/plots/confusion.json): a power scale, so that errors
# of a fraction of a percent still show, and white text on cells above 40%.
CONFUSION_GAMMA = 0.3
CONFUSION_DARK = 40


def percent_label(value: float) -> str:
    """One decimal ("0.4", "98.8"); "100" only when there is no error (99.96 reads 99.9)."""
    return "100" if value == 100 else f"{min(value, 99.9):.1f}"


def confusion_matrix(predictions: pd.DataFrame) -> Figure:
    """Actual (rows) vs predicted (columns) digits: percent of each actual digit's test images."""
    percent, totals = class_percent(predictions)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(percent.to_numpy(), cmap="Blues", norm=PowerNorm(CONFUSION_GAMMA, vmin=0, vmax=100))
    for (row, col), value in np.ndenumerate(percent.to_numpy()):
        if value:
            colour = "white" if value > CONFUSION_DARK else "black"
            ax.text(col, row, percent_label(value), ha="center", va="center", fontsize=7, color=colour)
    ticks = [0, 0.1, 1, 10, 50, 100]
    bar = fig.colorbar(image, ax=ax, label="% of the actual digit's test images", ticks=ticks)
    bar.ax.set_yticklabels([f"{t:g}" for t in ticks])
    accuracy = 100 * (predictions["actual"] == predictions["predicted"]).mean()
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="actual (test images)")
    ax.set_yticklabels([f"{digit} (n={n:,})" for digit, n in totals.items()])
    fig.suptitle(
        f"Test confusion matrix, accuracy {accuracy:.2f}%\n"
        "% of each actual digit (rows sum to 100); off the diagonal = errors",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def misclassified(images: np.ndarray, predictions: pd.DataFrame, count: int) -> Figure:
    """The first ``count`` test digits the model got wrong; images: [N, 28, 28, 1] in 0..1."""
    all_wrong = np.flatnonzero(predictions["actual"] != predictions["predicted"])
    wrong = all_wrong[:count]
    cols = 6
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, 0.5 + rows * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[index, :, :, 0], cmap="gray_r")
        row = predictions.iloc[index]
        ax.set_title(f"true {row['actual']}, pred {row['predicted']}", fontsize=7)
    fig.suptitle(
        f"{len(wrong)} of {len(all_wrong):,} misclassified test digits (of {len(predictions):,})", fontsize=10
    )
    fig.tight_layout()
    return fig


def mean_history(history: pd.DataFrame) -> pd.DataFrame:
    """Long format for ``dvc plots``: per split (train, validation) and epoch, the mean over folds."""
    means = history.drop(columns=["fold", "data"]).groupby("epoch", as_index=False).mean()
    metrics = ["loss", "accuracy_pct"]
    splits = [
        means[["epoch", *metrics]].assign(split="train"),
        means[["epoch", *(f"val_{m}" for m in metrics)]]
        .set_axis(["epoch", *metrics], axis=1)
        .assign(split="validation"),
    ]
    table = pd.concat(splits, ignore_index=True)[["epoch", "split", *metrics]]
    return table.assign(data=history["data"].iloc[0])


def save(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG, with no timestamp in it (the same data, the same bytes), and free it."""
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)
