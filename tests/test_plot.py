import numpy as np
import pandas as pd
import pytest

from stages.plot import confusion_matrix, fold_scores, learning_curves, mean_history, misclassified

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(folds: int, epochs: int = 3) -> pd.DataFrame:
    rows = [
        {
            "fold": f,
            "epoch": e,
            "loss": 1 / e,
            "accuracy": 1 - 0.1 / e,
            "val_loss": 1.2 / e,
            "val_accuracy": 1 - 0.12 / e - 0.01 * f,
        }
        for f in range(1, folds + 1)
        for e in range(1, epochs + 1)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("folds", [2, 5])
def test_figures_are_valid_pngs(tmp_path, folds):
    scores = pd.DataFrame({"fold": range(1, folds + 1), "accuracy": np.linspace(97, 99, folds)})
    predictions = pd.DataFrame({"actual": np.arange(50) % 10, "predicted": (np.arange(50) * 7) % 10})
    images = np.random.default_rng(0).random((50, 28, 28, 1), dtype=np.float32)
    figures = {
        "curves": learning_curves(history(folds)),
        "scores": fold_scores(scores),
        "confusion": confusion_matrix(predictions),
        "wrong": misclassified(images, predictions, 12),
    }
    curves = figures["curves"]
    assert all(len(ax.lines) == 2 * folds for ax in curves.axes)  # train + validation per fold
    for name, figure in figures.items():
        figure.savefig(tmp_path / f"{name}.png", dpi=100)
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(PNG_MAGIC) and 5_000 < len(data) < 300_000


def test_misclassified_shows_only_wrong_digits_up_to_count():
    predictions = pd.DataFrame({"actual": [1, 2, 3, 4], "predicted": [1, 5, 3, 6]})
    figure = misclassified(np.zeros((4, 28, 28, 1), np.float32), predictions, 10)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["true 2, pred 5", "true 4, pred 6"]


def test_mean_history_averages_folds_per_epoch():
    table = mean_history(history(2))
    assert table["epoch"].tolist() == [1, 2, 3]
    assert table.loc[0, "val_accuracy"] == pytest.approx(1 - 0.12 - 0.015)
    assert "fold" not in table.columns
