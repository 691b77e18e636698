"""Training runs as independent tasks: the k fold fits and the final fit.

A :class:`FitTask` carries everything one fit needs (which images, which seed),
so tasks share no state and run anywhere: in this process, in local worker
processes (joblib's loky) or on a Dask cluster. Given its seed, a task gives
the same result wherever it runs.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.core.errors import PipelineError
from digits.core.params import Params
from digits.core.tensorflow_env import check_onednn

# TensorFlow's CPU kernels split their sums by thread count, so the count is part of
# the result: one thread per fit makes results the same for any cv.n_jobs, any machine,
# here or on a cluster. Parallelism comes from running fits side by side.
THREADS_PER_FIT = 1


@dataclass(frozen=True)
class FitTask:
    """One training run: fit on ``train_index``, validate on ``val_index`` (if any)."""

    name: str  # "fold 2/5" or "final"
    seed: int
    train_index: np.ndarray
    val_index: np.ndarray | None = None


@dataclass(frozen=True)
class Epoch:
    """A fit's report at the end of one of its epochs (plain types: it travels between machines)."""

    fit: str  # the task's name: "fold 2/5", "final"
    epoch: int  # 1-based
    logs: dict[str, float]  # Keras' logs: loss, accuracy[, val_loss, val_accuracy]
    seconds: float  # how long the epoch took


@dataclass(frozen=True)
class FitResult:
    name: str
    history: dict[str, list[float]]  # loss, accuracy[, val_loss, val_accuracy] per epoch
    model: bytes  # the trained model as a .keras archive: the caller needs no TensorFlow to save it
    seconds: float
    # Accuracy on the held-out part after the last epoch, 0..1, with the shifts of ``tta``
    # (the history's is without them); None for the final fit, which holds nothing out.
    val_accuracy: float | None = None


def _configure_tensorflow() -> None:
    """oneDNN, one thread and deterministic ops, set once per process before TensorFlow starts."""
    check_onednn()
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == THREADS_PER_FIT:
        return  # this worker already ran a fit
    tf.config.threading.set_intra_op_parallelism_threads(THREADS_PER_FIT)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS_PER_FIT)
    tf.config.experimental.enable_op_determinism()
    # A worker traces each new fit's model anew, as it must; TensorFlow counts the traces per
    # process and, from the fifth, warns of "excessive retracing" (epochs=1, 5 folds).
    tf.get_logger().setLevel("ERROR")


def _reporting_callback(task: FitTask, report: Callable[[Epoch], None]):
    import keras

    class EpochReport(keras.callbacks.Callback):
        """Hands each epoch's logs to ``report``; Keras' own per-batch progress bar stays off."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = {key: float(value) for key, value in (logs or {}).items()}
            report(Epoch(task.name, epoch + 1, logs, time.perf_counter() - self.start))

    return EpochReport()


def check_finite(task: FitTask, history: dict[str, list[float]], params: Params) -> None:
    """A loss that became NaN or inf means training diverged: stop with the param to change."""
    for key, values in history.items():
        for epoch, value in enumerate(values, start=1):
            if not math.isfinite(value):
                raise PipelineError(
                    f"{task.name}: {key} became {value} in epoch {epoch}: training diverged; lower "
                    f"optimizer.learning_rate (now {params.optimizer.learning_rate}) and run it again"
                )


def to_bytes(model) -> bytes:
    """``model`` as the bytes of its ``.keras`` archive: the same weights give the same bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return reproducible(path.read_bytes())


def reproducible(archive: bytes) -> bytes:
    """A ``.keras`` archive without what differs from one save of the same model to the next.

    That is the time (``date_saved``, zip entry times) and memory addresses (Keras writes
    ``id()`` of each shared object, numbered here in order of appearance instead).
    Otherwise every save of identical weights gets new bytes, so a new hash in dvc.lock
    and a re-run of everything downstream of it.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            elif entry.filename == "config.json":
                data = json.dumps(_numbered_shared_objects(json.loads(data), {})).encode()
            info = zipfile.ZipInfo(entry.filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = entry.compress_type
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return out.getvalue()


def _numbered_shared_objects(config, numbers: dict[int, int]):
    if isinstance(config, list):
        return [_numbered_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    return {
        key: numbers.setdefault(value, len(numbers) + 1)
        if key == "shared_object_id"
        else _numbered_shared_objects(value, numbers)
        for key, value in config.items()
    }


def fresh_model(params: Params, steps_per_epoch: int, seed: int):
    """The model of ``params``, as if in a new process: a worker's earlier fits leave no trace.

    Keras numbers the names of layers and optimizers per process (``dense_2`` in a worker's
    second fit), and the names are in the saved archive.
    """
    import keras

    from digits.training.model import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return build_model(params, steps_per_epoch, seed=seed)


def fit(
    task: FitTask,
    x: np.ndarray,
    y: np.ndarray,
    params: Params,
    report: Callable[[Epoch], None] | None = None,
) -> FitResult:
    """Train a fresh model on ``x[task.train_index]``; x: [N, 28, 28, 1] float32, y: [N, 10].

    ``report`` gets each epoch's :class:`Epoch` as it ends (:mod:`digits.training.live`).
    """
    _configure_tensorflow()
    import keras

    from digits.training.model import INFERENCE_BATCH_SIZE

    start = time.perf_counter()
    model = fresh_model(params, math.ceil(len(task.train_index) / params.batch_size), task.seed)
    validation = None
    if task.val_index is not None:
        validation = (x[task.val_index], y[task.val_index])
    # Every image in order (the final fit): the arrays as they are, not a copy of them.
    everything = np.array_equal(task.train_index, np.arange(len(x)))
    history = model.fit(
        x if everything else x[task.train_index],
        y if everything else y[task.train_index],
        epochs=params.epochs,
        batch_size=params.batch_size,
        validation_data=validation,
        validation_batch_size=INFERENCE_BATCH_SIZE,  # validation is inference only: cheap
        # Stop at the first non-finite loss instead of training on NaN to the end; validate the
        # averaged weights, which the fit ends with, rather than the last step's.
        callbacks=[keras.callbacks.TerminateOnNaN()]
        + ([keras.callbacks.SwapEMAWeights()] if params.optimizer.ema else [])
        + ([_reporting_callback(task, report)] if report else []),
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in history.history.items()}
    check_finite(task, history, params)
    return FitResult(
        name=task.name,
        history=history,
        model=to_bytes(model),
        seconds=time.perf_counter() - start,
        val_accuracy=_held_out_accuracy(model, validation, history, params.tta),
    )


def _held_out_accuracy(model, validation, history: dict[str, list[float]], tta: int) -> float | None:
    """The fold's score: Keras' last validation accuracy, or the same images with ``tta``'s shifts."""
    if validation is None:
        return None
    if not tta:
        return history["val_accuracy"][-1]
    from digits.training.tta import probabilities

    x, y = validation
    return float((probabilities(model, x, tta).argmax(axis=1) == y.argmax(axis=1)).mean())
