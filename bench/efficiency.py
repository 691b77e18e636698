"""How close a fit runs to this CPU's limit: training FLOPs per image, images/s per core, the peak.

    python bench/efficiency.py                      # about 2 minutes here, idle
    python bench/efficiency.py --out results/efficiency.md

Everything runs on one core, as each fit of the pipeline does (``THREADS_PER_FIT``), in one
process and one run, so the ratios hold however busy the host was:

- **peak**: a single-thread float32 matrix product, NumPy's BLAS and TensorFlow's own;
- **FLOPs per training image**, counted from the model's Conv2D and Dense layers: forward,
  the gradient of the weights and the gradient of the activations (none for the first layer,
  whose input is the image), that is 3x forward less the first layer's share. Pooling,
  BatchNorm, ReLU, softmax and augmentation are left out (a few percent);
- **images/s** of ``model.fit`` as the pipeline calls it (``digits.training.fit.fresh_model``:
  the same model, optimizer, ``steps_per_execution``), timed on its second epoch, after the
  tracing, at the params' batch size and at larger ones; of the modern recipe, also with
  Keras' three warps in place of its one, and as it was before the warp, the moving average
  and ``same`` pooling (what those cost or save); and of two default fits at once, one
  per core, as ``cv.n_jobs=2`` runs them (what the two cores share shows there); and of
  default fits in lockstep, 2 or 5 of them as one graph (separate ops, or one grouped op per
  layer), all of them together.

Random images: the speed of these fits does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from digits.core.params import PARAMS_FILE, Params, parse_params
from digits.core.tensorflow_env import ONEDNN_VARIABLE
from digits.reporting.recipes import overrides

MATMUL_SIZE = 2048
OWN_KERNELS = ("tutorial (default)", "modern recipe")  # the fits also timed without oneDNN


def params_of(settings: dict[str, object]) -> Params:
    """The committed params with dotted ``settings`` (a recipe's) on top."""
    tree = yaml.safe_load(PARAMS_FILE.read_text())
    for key, value in settings.items():
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node[part]
        node[leaf] = value
    return parse_params(tree)


def layer_flops(model) -> list[int]:
    """Forward FLOPs per image of each Conv2D and Dense layer, in order (a multiply-add is 2)."""
    from keras import layers

    flops = []
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kh, kw, channels, _ = layer.kernel.shape
            flops.append(2 * height * width * filters * kh * kw * channels)
        elif isinstance(layer, layers.Dense):
            inputs, units = layer.kernel.shape
            flops.append(2 * inputs * units)
    return flops


def training_flops(model) -> int:
    """FLOPs per training image: forward, weight gradients, activation gradients but the first's."""
    flops = layer_flops(model)
    return 3 * sum(flops) - flops[0]


def numpy_peak(seconds: float = 3.0) -> float:
    """GFLOP/s of a single-thread float32 matrix product in NumPy (its BLAS), the best of a few."""
    a, b = (np.random.default_rng(i).random((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32) for i in (0, 1))
    best, deadline = math.inf, time.perf_counter() + seconds
    with threadpool_limits(1):
        a @ b  # warm-up
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / best / 1e9


def tensorflow_peak(seconds: float = 3.0) -> float:
    """GFLOP/s of a single-thread float32 matrix product in TensorFlow (this process: one thread)."""
    import tensorflow as tf

    a, b = (tf.random.stateless_uniform((MATMUL_SIZE, MATMUL_SIZE), seed=(i, 0)) for i in (0, 1))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product()
    best, deadline = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIZE**3 / best / 1e9


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y


def fit_speed(params: Params, n: int) -> float:
    """Images/s of the pipeline's ``model.fit`` on ``n`` images, on its second epoch."""
    from digits.training.fit import fresh_model

    x, y = data(n)
    model = fresh_model(params.model_copy(update={"epochs": 2}), math.ceil(n / params.batch_size), seed=0)
    return n / second_epoch_seconds(model, x, y, params.batch_size)


def second_epoch_seconds(model, x, y, batch_size: int) -> float:
    """How long the second epoch of ``model.fit(x, y)`` takes: the first includes the tracing."""
    import keras

    starts: list[float] = []
    ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: starts.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()),
    )
    model.fit(x, y, epochs=2, batch_size=batch_size, callbacks=[timer], verbose=0)
    return ends[1] - starts[1]


def lockstep_speed(params: Params, n: int, k: int, grouped: bool) -> float:
    """Training images/s of ``k`` default fits together, trained in lockstep as one graph on one core.

    Each fit keeps its own weights and its own batch; SGD's updates are per variable, so one
    optimizer over the sum of the k losses gives each fit its own. Separate ops: the k models
    of :func:`~digits.training.model.build_model` side by side in one model. ``grouped``: one
    op for the k fits at each layer (a depthwise Conv2D over k channels, one fit's image in
    each; batched matrix products for the dense layers), as a lockstep k-fold graph is laid out.
    ``n`` images in all, ``n // k`` for each fit, so the k fits do one fit's work: above one fit's
    images/s, lockstep would pay. Only the speed counts here: the grouped model's loss is the mean
    over the k fits, which a lockstep run would weight by k.
    """
    import keras
    from keras import layers

    from digits.core.mnist import NUM_CLASSES
    from digits.training.model import INPUT_SHAPE, STEPS_PER_EXECUTION, _optimizer, build_model

    x, y = data(n // k)
    keras.utils.set_random_seed(0)
    if grouped:
        image = keras.Input((*INPUT_SHAPE[:2], k))
        # Depthwise: a grouped conv of one channel per group (Conv2D's groups=k ran 4x slower still).
        width = params.model.width
        maps = layers.DepthwiseConv2D(3, depth_multiplier=width, activation="relu")(image)
        maps = layers.MaxPooling2D(2)(maps)
        side = maps.shape[1]
        features = layers.Reshape((side * side, k, width))(maps)
        features = layers.Reshape((k, side * side * width))(layers.Permute((2, 1, 3))(features))
        hidden = layers.EinsumDense("bki,kio->bko", (k, 100), bias_axes="ko", activation="relu")(features)
        scores = layers.EinsumDense("bki,kio->bko", (k, NUM_CLASSES), bias_axes="ko")(hidden)
        model = keras.Model(image, layers.Softmax()(scores))
        loss, metrics, inputs, targets = (
            "categorical_crossentropy",
            ["accuracy"],
            np.repeat(x, k, axis=3),
            np.repeat(y[:, None], k, 1),
        )
    else:
        images = [keras.Input(INPUT_SHAPE) for _ in range(k)]
        # The layers of k pipeline models, each in a Sequential of its own name (all are "baseline").
        layouts = [build_model(params, seed=i).layers for i in range(k)]
        fits = [
            keras.Sequential([keras.Input(INPUT_SHAPE), *found], name=f"fit_{i}")
            for i, found in enumerate(layouts)
        ]
        model = keras.Model(images, [fit(image) for fit, image in zip(fits, images, strict=True)])
        loss, metrics, inputs, targets = (
            ["categorical_crossentropy"] * k,
            [["accuracy"]] * k,
            [x] * k,
            [y] * k,
        )
    # The optimizer and the metric of the pipeline's fits (build_model): the same work per step.
    optimizer = _optimizer(params.optimizer, params.epochs, steps_per_epoch=None)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, steps_per_execution=STEPS_PER_EXECUTION)
    return k * len(x) / second_epoch_seconds(model, inputs, targets, params.batch_size)


def set_up() -> None:
    """This process as the pipeline's workers are: TensorFlow quiet, oneDNN, one thread, deterministic."""
    from digits.core import quiet
    from digits.training.fit import _configure_tensorflow

    quiet.install()
    _configure_tensorflow()


def one_core_fit_speed(params: Params, n: int) -> float:
    """:func:`fit_speed` in a worker process of its own."""
    set_up()
    return fit_speed(params, n)


def own_kernels_speed(params: Params, n: int) -> float:
    """:func:`fit_speed` in a worker process of its own, with TensorFlow's own kernels: no oneDNN.

    That is how TensorFlow runs by default on a CPU without AVX-512's newer instructions; the
    pipeline turns oneDNN on everywhere (:mod:`digits.core.tensorflow_env`).
    """
    import digits.training.fit

    os.environ[ONEDNN_VARIABLE] = "0"
    import tensorflow  # noqa: F401  (started now, so without oneDNN)

    digits.training.fit.check_onednn = lambda: None  # the pipeline's refusal is what this measures
    set_up()
    return fit_speed(params, n)


def side_by_side(params: Params, n: int, fits: int = 2) -> float:
    """Images/s of each of ``fits`` fits running at once, one per core, as ``cv.n_jobs=2`` runs them."""
    with ProcessPoolExecutor(fits, mp_context=multiprocessing.get_context("spawn")) as pool:
        return min(pool.map(one_core_fit_speed, [params] * fits, [n] * fits))


def protocol_flops(params: Params, per_image: int, forward: int, n_train: int = 60_000) -> float:
    """FLOPs of the whole protocol: k fold fits with validation each epoch, and the final fit."""
    folds = params.cv.folds
    held_out = n_train // folds
    fold = params.epochs * ((n_train - held_out) * per_image + held_out * forward)
    return folds * fold + params.epochs * n_train * per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12_000, help="images per timed epoch")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args()
    set_up()
    from digits.training.fit import THREADS_PER_FIT
    from digits.training.model import build_model

    assert THREADS_PER_FIT == 1  # what "one core" below means

    numpy_gflops, tf_gflops = numpy_peak(), tensorflow_peak()
    fits = {
        "tutorial (default)": params_of({}),
        "tutorial, batch 128": params_of({"batch_size": 128}),
        "tutorial, batch 1024": params_of({"batch_size": 1024}),
        "modern recipe": params_of(overrides("modern")),
        # What the fused warp saves, and the recipe as it was before it (and EMA, same pooling).
        "modern recipe, Keras' three warps": params_of(overrides("modern", {"augment.fused": False})),
        "modern recipe before": params_of(
            overrides("modern", {"augment.fused": False, "optimizer.ema": 0.0, "model.pool": "valid"})
        ),
    }
    lines = [
        f"**One core, {args.images:,} images per timed epoch. Peak: a {MATMUL_SIZE}x{MATMUL_SIZE} "
        f"float32 matrix product on one thread, NumPy {numpy_gflops:.0f} GFLOP/s, "
        f"TensorFlow {tf_gflops:.0f} GFLOP/s.**",
        "",
        "| fit | batch | training MFLOP / image | images/s | GFLOP/s | of NumPy's peak | of TensorFlow's "
        "| the protocol at this speed, 2 cores |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    per_image: dict[str, int] = {}
    speeds: dict[str, float] = {}
    for name, params in fits.items():
        print(f"efficiency: {name} ...", flush=True)
        model = build_model(params, steps_per_epoch=1)
        per_image[name], forward = training_flops(model), sum(layer_flops(model))
        fitted = speeds[name] = fit_speed(params, args.images)
        gflops = fitted * per_image[name] / 1e9
        total = protocol_flops(params, per_image[name], forward)
        minutes = total / (gflops * 1e9 * 2) / 60  # two fits side by side, as cv.n_jobs=2 runs them
        lines.append(
            f"| {name} | {params.batch_size} | {per_image[name] / 1e6:.2f} | {fitted:,.0f} | {gflops:.1f} "
            f"| {gflops / numpy_gflops:.0%} | {gflops / tf_gflops:.0%} "
            f"| {minutes:.1f} min ({total / 1e12:.1f} TFLOP) |"
        )
    print("efficiency: without oneDNN ...", flush=True)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        own = {name: pool.submit(own_kernels_speed, fits[name], args.images).result() for name in OWN_KERNELS}
    print("efficiency: tutorial (default), fits in lockstep ...", flush=True)
    default = fits["tutorial (default)"]
    lockstep = {
        (k, grouped): lockstep_speed(default, args.images, k, grouped)
        for k in (2, 5)
        for grouped in (False, True)
    }
    print("efficiency: tutorial (default), two fits side by side ...", flush=True)
    each = side_by_side(fits["tutorial (default)"], args.images)
    lines += [
        "",
        f"Two default fits side by side, one per core (as `cv.n_jobs=2` runs them): {each:,.0f} images/s "
        f"each, {each * per_image['tutorial (default)'] / 1e9:.1f} GFLOP/s each.",
        "",
        "Without oneDNN (`TF_ENABLE_ONEDNN_OPTS=0`, TensorFlow's own kernels, its default on a CPU "
        "without AVX-512's newer instructions): "
        + "; ".join(
            f"{name} {speed:,.0f} images/s, so oneDNN is {speeds[name] / speed:.2f}x as fast"
            for name, speed in own.items()
        )
        + ".",
    ]
    lines += [
        "",
        "Default fits in lockstep, k of them as one graph on one core, each its own weights and batch "
        "(training images/s of the k fits together, against one fit alone): "
        + "; ".join(
            f"{k} {'grouped into one op per layer' if grouped else 'as separate ops'} {speed:,.0f} "
            f"({speed / speeds['tutorial (default)']:.2f}x)"
            for (k, grouped), speed in lockstep.items()
        )
        + ".",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
