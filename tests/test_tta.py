"""Test-time shifts (``tta``): what is averaged, and that it changes the scores, not the training."""

import numpy as np
import pytest
from conftest import make_params

from digits.data.prepared import prepare, stratified_subset
from digits.data.sources import from_sample
from digits.training.cv import fold_tasks
from digits.training.fit import fit
from digits.training.tta import probabilities, shifted, views


def test_a_shift_moves_the_image_and_fills_with_black():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 3, 0], x[0, 2, 1, 0] = 1.0, 0.5
    down = shifted(x, 1, 0)
    assert down[0, 1, 3, 0] == 1.0 and down[0, 3, 1, 0] == 0.5 and down[0, 0].sum() == 0
    left = shifted(x, 0, -1)
    assert left[0, 0, 2, 0] == 1.0 and left[0, 2, 0, 0] == 0.5 and left[0, :, 3].sum() == 0
    assert shifted(x, 0, 1)[0, 0].sum() == 0  # the pixel pushed over the edge is gone
    assert views(0) == [(0, 0)] and views(2) == [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)]


class Rows:
    """A stand-in model: 'class r' gets the ink of row r; the answer moves with the image."""

    def predict(self, x, batch_size, verbose):
        ink = x[:, :10, 0, 0]
        return ink / np.maximum(ink.sum(axis=1, keepdims=True), 1e-9)


def test_the_softmax_is_averaged_over_the_image_and_its_four_shifts():
    x = np.zeros((1, 28, 28, 1), np.float32)
    x[0, 5, 0, 0] = 1.0
    np.testing.assert_array_equal(probabilities(Rows(), x), np.eye(10)[[5]])
    # Down and up move the ink to rows 6 and 4; right and left move it out of column 0, where
    # the stand-in looks (left: over the edge), so those two views answer nothing.
    expected = (np.eye(10)[5] + np.eye(10)[6] + np.eye(10)[4]) / 5
    np.testing.assert_allclose(probabilities(Rows(), x, 1)[0], expected)


@pytest.fixture(scope="module")
def small_train():
    return prepare(stratified_subset(from_sample()["train"], 400, seed=1))


def test_shifts_change_the_fold_score_and_nothing_of_the_training(small_train, tmp_path):
    from digits.training.model import load_model

    x, y = small_train
    task = fold_tasks(len(x), 2, 1)[0]
    plain = fit(task, x, y, make_params(epochs=1))
    shifts = fit(task, x, y, make_params(epochs=1, tta=1))
    assert shifts.model == plain.model and shifts.history == plain.history
    assert plain.val_accuracy == plain.history["val_accuracy"][-1]
    (tmp_path / "model.keras").write_bytes(shifts.model)
    model = load_model(tmp_path / "model.keras")
    x_val, labels = x[task.val_index], y[task.val_index].argmax(axis=1)
    assert shifts.val_accuracy == float((probabilities(model, x_val, 1).argmax(axis=1) == labels).mean())
    assert round(shifts.val_accuracy, 6) != round(plain.val_accuracy, 6)  # 0.605 against 0.615 here
