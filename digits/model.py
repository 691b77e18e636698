"""The CNN of the tutorial, and two variants, built from params.

``baseline``::

    Conv2D(32, 3x3, relu) -> MaxPool(2x2) -> Flatten -> Dense(100, relu) -> Dense(10, softmax)

``batchnorm`` adds BatchNormalization after the conv and the hidden dense layer;
``deeper`` adds Conv2D(64) -> Conv2D(64) -> MaxPool(2x2) after the first block.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import keras
from keras import layers

from digits.errors import RESTORE, DataError
from digits.mnist import IMAGE_SHAPE, NUM_CLASSES

INPUT_SHAPE = (*IMAGE_SHAPE, 1)
# Inference only (validation, test, predict): large batches are cheap.
INFERENCE_BATCH_SIZE = 1024
STEPS_PER_EXECUTION = 32


def build_model(arch: str, learning_rate: float, momentum: float, seed: int | None = None) -> keras.Model:
    """A compiled model: SGD with momentum, categorical cross-entropy, accuracy.

    With ``seed``, the initial weights are those ``keras.utils.set_random_seed(seed)``
    would give, drawn from a private generator: in a Dask worker other threads use
    Python's global ``random`` too, and could shift the draws.
    """
    draws = random.Random(seed) if seed is not None else random

    def init(kind: type[keras.initializers.Initializer] = keras.initializers.HeUniform):
        # The same draw Keras makes for an unseeded initializer.
        return kind(seed=draws.randint(1, int(1e9)))

    model = keras.Sequential(name=arch)
    model.add(keras.Input(INPUT_SHAPE))
    model.add(layers.Conv2D(32, (3, 3), activation="relu", kernel_initializer=init()))
    if arch == "batchnorm":
        model.add(layers.BatchNormalization())
    model.add(layers.MaxPooling2D((2, 2)))
    if arch == "deeper":
        model.add(layers.Conv2D(64, (3, 3), activation="relu", kernel_initializer=init()))
        model.add(layers.Conv2D(64, (3, 3), activation="relu", kernel_initializer=init()))
        model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Flatten())
    model.add(layers.Dense(100, activation="relu", kernel_initializer=init()))
    if arch == "batchnorm":
        model.add(layers.BatchNormalization())
    model.add(
        layers.Dense(
            NUM_CLASSES, activation="softmax", kernel_initializer=init(keras.initializers.GlorotUniform)
        )
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        # Many batches per call: the same updates, far less Python overhead per step.
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=False,  # XLA measured 2x slower on this CPU
    )
    return model


def load_model(path: Path) -> keras.Model:
    """Load a model for inference (``safe_mode``: no arbitrary code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing; {RESTORE}")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # BadZipFile: bit rot, a bad CRC
        raise DataError(f"{path}: not a readable Keras model ({exc}); run: dvc repro -f train") from None
