"""The tutorial's protocol as a plain script: the baseline the pipeline is benchmarked against.

5-fold CV (KFold, shuffle, random_state=1) of the baseline CNN, 10 epochs, batch 32,
validation every epoch, then a final fit on all training images and one test.
Keras defaults throughout, as the tutorial runs. Prints the results as JSON.

    python bench/tutorial.py [--limit N] [--epochs E] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

from digits.core.mnist import Split  # noqa: E402
from digits.data.prepared import stratified_subset  # noqa: E402
from digits.data.sources import from_dir  # noqa: E402


def prep(split: Split) -> tuple[np.ndarray, np.ndarray]:
    x = split.images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    return x, keras.utils.to_categorical(split.labels, 10)


def define_model() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer="he_uniform"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu", kernel_initializer="he_uniform"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, help="training images (stratified subset, seed 1)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    data = from_dir(Path(os.environ["MNIST_DIR"]))
    train = data["train"] if args.limit is None else stratified_subset(data["train"], args.limit, 1)
    train_x, train_y = prep(train)
    test_x, test_y = prep(data["test"])

    scores = []
    for train_ix, val_ix in KFold(5, shuffle=True, random_state=1).split(train_x):
        model = define_model()
        model.fit(
            train_x[train_ix],
            train_y[train_ix],
            epochs=args.epochs,
            batch_size=32,
            validation_data=(train_x[val_ix], train_y[val_ix]),
            verbose=0,
        )
        _, accuracy = model.evaluate(train_x[val_ix], train_y[val_ix], verbose=0)
        scores.append(100 * accuracy)
        print(f"fold {len(scores)}: {scores[-1]:.3f}", flush=True)

    model = define_model()
    model.fit(train_x, train_y, epochs=args.epochs, batch_size=32, verbose=0)
    _, test_accuracy = model.evaluate(test_x, test_y, verbose=0)
    result = {
        "cv_mean": float(np.mean(scores)),
        "cv_std": float(np.std(scores)),
        "test_accuracy": 100 * float(test_accuracy),
    }
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
