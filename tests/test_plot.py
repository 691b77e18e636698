import numpy as np
import pandas as pd
import pytest
from PIL import Image

from digits.reporting.figures import (
    DPI,
    MAX_WIDTH_PX,
    class_percent,
    confusion_matrix,
    fold_scores,
    learning_curves,
    mean_history,
    misclassified,
    percent_label,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(folds: int, epochs: int = 3) -> pd.DataFrame:
    """A history.csv table: accuracies in percent."""
    rows = [
        {
            "fold": f,
            "epoch": e,
            "loss": 1 / e,
            "accuracy_pct": 100 - 10 / e,
            "val_loss": 1.2 / e,
            "val_accuracy_pct": 100 - 12 / e - f,
            "data": "60,000 full MNIST images",
        }
        for f in range(1, folds + 1)
        for e in range(1, epochs + 1)
    ]
    return pd.DataFrame(rows)


def predictions(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"actual": np.arange(n) % 10, "predicted": (np.arange(n) * 7) % 10})


@pytest.mark.parametrize("folds", [2, 5])
def test_figures_are_valid_pngs_two_of_which_fit_side_by_side_on_a_page(tmp_path, folds):
    scores = pd.DataFrame({"fold": range(1, folds + 1), "accuracy_pct": np.linspace(97, 99, folds)})
    images = np.random.default_rng(0).random((50, 28, 28, 1), dtype=np.float32)
    figures = {
        "curves": learning_curves(history(folds)),
        "scores": fold_scores(scores),
        "confusion": confusion_matrix(predictions()),
        "wrong": misclassified(images, predictions(), 12),
    }
    curves = figures["curves"]
    assert all(len(ax.lines) == 2 * folds for ax in curves.axes)  # train + validation per fold
    assert curves.axes[1].get_ylabel() == "accuracy (%)"
    low, high = curves.axes[1].get_xlim()
    assert [t for t in curves.axes[1].get_xticks() if low <= t <= high] == [1, 2, 3]  # whole epochs only
    for name, figure in figures.items():
        figure.savefig(tmp_path / f"{name}.png", dpi=DPI)
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and 5_000 < len(data) < 300_000
        with Image.open(tmp_path / f"{name}.png") as image:
            assert image.width <= MAX_WIDTH_PX, (name, image.size)  # dvc plots diff: 2 per 1,400 px


def test_learning_curves_of_a_single_epoch_show_points_on_epoch_1():
    figure = learning_curves(history(2, epochs=1))
    for ax in figure.axes:
        assert all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in ax.lines)
    low, high = figure.axes[1].get_xlim()
    assert low < 1 < high and [t for t in figure.axes[1].get_xticks() if low <= t <= high] == [1]


def test_confusion_matrix_is_percent_of_each_actual_digit_with_actual_on_rows():
    table = pd.DataFrame({"actual": [0, 0, 0, 0, 1] + [2] * 10, "predicted": [0, 0, 0, 6, 1] + [2] * 9 + [3]})
    percent, totals = class_percent(table)
    assert percent.loc[0, 0] == 75 and percent.loc[0, 6] == 25 and percent.loc[1, 1] == 100
    assert percent.loc[2, 2] == 90 and percent.loc[2, 3] == 10
    assert totals[:3].tolist() == [4, 1, 10] and percent.loc[5].sum() == 0  # no test image of a 5
    figure = confusion_matrix(table)
    ax = figure.axes[0]
    assert ax.get_ylabel().startswith("actual") and ax.get_xlabel() == "predicted"
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(["75.0", "25.0", "100", "90.0", "10.0"])
    assert ax.get_yticklabels()[2].get_text() == "2 (n=10)"


def test_percent_labels_have_one_decimal_and_never_round_up_to_100():
    values = (98.84, 10, 9.96, 0.4, 100, 99.51, 99.99)
    assert [percent_label(v) for v in values] == ["98.8", "10.0", "10.0", "0.4", "100", "99.5", "99.9"]


def test_misclassified_shows_only_wrong_digits_up_to_count():
    table = pd.DataFrame({"actual": [1, 2, 3, 4], "predicted": [1, 5, 3, 6]})
    figure = misclassified(np.zeros((4, 28, 28, 1), np.float32), table, 10)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["true 2, pred 5", "true 4, pred 6"]


def test_mean_history_has_one_row_per_split_and_epoch_in_percent():
    table = mean_history(history(2))
    assert list(table.columns) == ["epoch", "split", "loss", "accuracy_pct", "data"]
    assert set(table["data"]) == {"60,000 full MNIST images"}
    assert table["split"].tolist() == ["train"] * 3 + ["validation"] * 3
    assert table["epoch"].tolist() == [1, 2, 3] * 2
    validation = table[table["split"] == "validation"].set_index("epoch")
    assert validation.loc[1, "accuracy_pct"] == pytest.approx(100 - 12 - 1.5)  # mean of folds 1 and 2
    assert validation.loc[2, "loss"] == pytest.approx(0.6)
    assert table.set_index(["split", "epoch"]).loc[("train", 1), "accuracy_pct"] == pytest.approx(90)
