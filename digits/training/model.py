"""The CNN of the tutorial, its variants and a modern recipe, built from params.

``baseline``::

    Conv2D(32, 3x3, relu) -> MaxPool(2x2) -> Flatten -> Dense(100, relu) -> Dense(10, softmax)

``batchnorm`` adds BatchNormalization after the conv and the hidden dense layer;
``deeper`` adds Conv2D(64) -> Conv2D(64) -> MaxPool(2x2) after the first block.
``modern`` is three conv blocks (3x3 conv -> BatchNorm -> ReLU -> MaxPool) of
width, 2 x width and 4 x width filters, then Dense(128) -> BatchNorm -> ReLU.
32 is ``model.width``, the filters of the first conv layer, in every arch.

``augment.*`` put random rotation, zoom, shift and elastic layers in front (active in
training only; ``fused``: one warp that resamples once), ``model.dropout`` a Dropout before
each dense layer, ``model.pool: same`` pads the max-pools (a 7x7 map gives 4x4), and
``optimizer.*`` choose SGD or AdamW, with a constant rate or warm-up and cosine decay, and a
moving average of the weights (``ema``).
With the default params, nothing of these is added: the tutorial's model, draw for draw.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import keras
from keras import layers

from digits.core.errors import RESTORE, DataError
from digits.core.mnist import IMAGE_SHAPE, NUM_CLASSES
from digits.training.elastic import RandomElastic
from digits.training.warp import RandomWarp

if TYPE_CHECKING:
    from digits.core.params import OptimizerParams, Params

INPUT_SHAPE = (*IMAGE_SHAPE, 1)
# Inference only (validation, test, predict): large batches are cheap.
INFERENCE_BATCH_SIZE = 1024
STEPS_PER_EXECUTION = 32


def build_model(params: Params, steps_per_epoch: int | None = None, seed: int | None = None) -> keras.Model:
    """A compiled model: the optimizer of ``params``, categorical cross-entropy, accuracy.

    ``steps_per_epoch`` sets the length of a learning-rate schedule (needed with one). With ``seed``,
    the initial weights are those ``keras.utils.set_random_seed(seed)`` would give,
    drawn from a private generator: in a Dask worker other threads use Python's
    global ``random`` too, and could shift the draws.
    """
    draws = random.Random(seed) if seed is not None else random

    def draw() -> int:
        # The same draw Keras makes for an unseeded initializer.
        return draws.randint(1, int(1e9))

    def he() -> keras.initializers.Initializer:
        return keras.initializers.HeUniform(draw())

    def conv(filters: int, **options) -> layers.Conv2D:
        return layers.Conv2D(filters, (3, 3), kernel_initializer=he(), **options)

    arch, width, dropout = params.model.arch, params.model.width, params.model.dropout
    model = keras.Sequential(name=arch)
    model.add(keras.Input(INPUT_SHAPE))
    for layer in _augmentation(params, draw):
        model.add(layer)
    if arch == "modern":
        for filters in (width, 2 * width, 4 * width):
            model.add(conv(filters, padding="same", use_bias=False))
            model.add(layers.BatchNormalization())
            model.add(layers.ReLU())
            model.add(layers.MaxPooling2D((2, 2), padding=params.model.pool))
    else:
        model.add(conv(width, activation="relu"))
        if arch == "batchnorm":
            model.add(layers.BatchNormalization())
        model.add(layers.MaxPooling2D((2, 2), padding=params.model.pool))
        if arch == "deeper":
            model.add(conv(2 * width, activation="relu"))
            model.add(conv(2 * width, activation="relu"))
            model.add(layers.MaxPooling2D((2, 2), padding=params.model.pool))
    model.add(layers.Flatten())
    if dropout:
        model.add(layers.Dropout(dropout, seed=draw()))
    if arch == "modern":
        model.add(layers.Dense(128, use_bias=False, kernel_initializer=he()))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU())
    else:
        model.add(layers.Dense(100, activation="relu", kernel_initializer=he()))
        if arch == "batchnorm":
            model.add(layers.BatchNormalization())
    if dropout:
        model.add(layers.Dropout(dropout, seed=draw()))
    glorot = keras.initializers.GlorotUniform(draw())
    model.add(layers.Dense(NUM_CLASSES, activation="softmax", kernel_initializer=glorot))
    model.compile(
        optimizer=_optimizer(params.optimizer, params.epochs, steps_per_epoch),
        loss=_loss(params.model.label_smoothing),
        metrics=["accuracy"],
        # Many batches per call: the same updates, far less Python overhead per step.
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=False,  # XLA measured 2x slower on this CPU
    )
    return model


def _augmentation(params: Params, draw: Callable[[], int]) -> list[layers.Layer]:
    """Random rotation, zoom, shift and elastic distortion, each seeded, one after another or
    (``fused``) in one resampling; empty pixels are black, as MNIST's border."""
    augment, fill = params.augment, {"fill_mode": "constant", "fill_value": 0.0}
    if augment.fused:
        moves = (augment.rotation, augment.zoom, augment.shift, augment.elastic)
        return [RandomWarp(*moves, seed=draw())] if any(moves) else []
    found = []
    if augment.rotation:
        found.append(layers.RandomRotation(augment.rotation / 360, seed=draw(), **fill))
    if augment.zoom:
        found.append(layers.RandomZoom(augment.zoom, seed=draw(), **fill))
    if augment.shift:
        found.append(layers.RandomTranslation(augment.shift, augment.shift, seed=draw(), **fill))
    if augment.elastic:
        found.append(RandomElastic(augment.elastic, seed=draw()))
    return found


def _loss(label_smoothing: float) -> str | keras.losses.Loss:
    if not label_smoothing:  # the tutorial's loss, named as it was: the same config in the saved model
        return "categorical_crossentropy"
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


def _optimizer(
    optimizer: OptimizerParams, epochs: int, steps_per_epoch: int | None
) -> keras.optimizers.Optimizer:
    rate = optimizer.learning_rate
    if optimizer.schedule == "cosine":
        if steps_per_epoch is None:
            raise ValueError("a cosine schedule needs steps_per_epoch")
        warmup = optimizer.warmup_epochs * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else rate,  # a warm-up starts from 0
            decay_steps=(epochs - optimizer.warmup_epochs) * steps_per_epoch,
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )
    # Polyak averaging: fit() ends by setting the weights to their moving average. Without it
    # the optimizer's config is the tutorial's, so the saved model is too.
    ema = {"use_ema": True, "ema_momentum": optimizer.ema} if optimizer.ema else {}
    if optimizer.name == "adamw":
        return keras.optimizers.AdamW(
            rate, beta_1=optimizer.momentum, weight_decay=optimizer.weight_decay, **ema
        )
    # None, not 0: no weight-decay step at all, as in the tutorial.
    decay = optimizer.weight_decay or None
    return keras.optimizers.SGD(rate, momentum=optimizer.momentum, weight_decay=decay, **ema)


def load_model(
    path: Path, missing: str = f"missing; {RESTORE}", fix: str = "run: dvc repro -f train"
) -> keras.Model:
    """Load a model for inference (``safe_mode``: no arbitrary code runs from the file).

    Anything wrong with the file is a ``DataError`` naming it, with ``missing`` or ``fix`` as the
    advice: the defaults fit the pipeline's own models.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise DataError(
            f"{path}: not a readable Keras model (not a zip archive, as .keras files are: damaged, "
            f"cut short or another kind of file); {fix}"
        )
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged or crafted file can make Keras raise anything
        # Keras's messages run to many lines (the whole config); the first sentence says it.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        raise DataError(f"{path}: not a readable Keras model ({reason}); {fix}") from None
