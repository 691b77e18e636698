import numpy as np
import pytest
from conftest import make_splits

from digits.core.errors import DataError
from digits.core.mnist import Split
from digits.data.prepared import load_prepared, prepare, save_prepared, stratified_subset


def test_prepare_shapes_dtypes_range_and_one_hot():
    split = make_splits(n_train=30)["train"]
    x, y = prepare(split)
    assert x.shape == (30, 28, 28, 1) and x.dtype == np.float32
    assert y.shape == (30, 10) and y.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(x[..., 0] * 255, split.images)
    assert (y.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(y.argmax(axis=1), split.labels)  # labels preserved


def test_prepare_extremes():
    images = np.zeros((2, 28, 28), np.uint8)
    images[1] = 255
    x, _ = prepare(Split(images, np.array([3, 4], np.uint8)))
    assert x[0].max() == 0.0 and x[1].min() == 1.0


def test_limit_is_stratified_seeded_and_ordered():
    labels = np.repeat(np.arange(10, dtype=np.uint8), [50, 60, 70, 80, 90, 100, 110, 120, 130, 190])
    images = np.zeros((len(labels), 28, 28), np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.divmod(np.arange(len(labels)), 256)  # each image's index
    split = Split(images, labels)
    subset = stratified_subset(split, 100, seed=1)
    index = subset.images[:, 0, 0].astype(int) * 256 + subset.images[:, 0, 1]
    assert (np.diff(index) > 0).all()  # in the original order, no image twice
    np.testing.assert_array_equal(subset.labels, labels[index])  # each image with its own label
    counts = np.bincount(subset.labels, minlength=10)
    assert counts.sum() == 100
    np.testing.assert_allclose(counts, np.bincount(labels) / 10, atol=1)
    again = stratified_subset(split, 100, seed=1)
    np.testing.assert_array_equal(again.images, subset.images)
    other = stratified_subset(split, 100, seed=2)
    assert not np.array_equal(other.images, subset.images)
    assert stratified_subset(split, 10_000, seed=1) is split


def test_prepared_files_round_trip(tmp_path):
    x, y = prepare(make_splits()["train"])
    save_prepared(tmp_path / "train.npz", x, y)
    x2, y2 = load_prepared(tmp_path / "train.npz")
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x * 255, y), "pixel values outside 0..1"),
        (lambda x, y: (x.astype(np.float64), y), "x is float64"),
        (lambda x, y: (x, y[:-1]), "y is float32 [59, 10], expected float32 [60, 10]"),
        (lambda x, y: (x, y * 2), "labels are not one-hot"),
        (lambda x, y: (x.reshape(-1, 28, 28), y), "expected float32 [N, 28, 28, 1]"),
    ],
)
def test_hand_edited_prepared_file_is_rejected(tmp_path, change, message):
    x, y = prepare(make_splits()["train"])
    save_prepared(tmp_path / "train.npz", *change(x, y))
    with pytest.raises(DataError, match="corrupt or hand-edited") as excinfo:
        load_prepared(tmp_path / "train.npz")
    assert message in str(excinfo.value) and "dvc repro -f preprocess" in str(excinfo.value)


def test_corrupt_or_missing_prepared_file(tmp_path):
    (tmp_path / "train.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="corrupt or not written by preprocess"):
        load_prepared(tmp_path / "train.npz")
    with pytest.raises(DataError, match="missing; restore it from DVC.s cache with `dvc checkout`"):
        load_prepared(tmp_path / "test.npz")


def test_pickled_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match="corrupt or not written by preprocess"):
        load_prepared(tmp_path / "train.npz")
