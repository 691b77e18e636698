"""Stage ``evaluate``: the final test, once, on the held-out test set.

Evaluates ``models/model.keras`` (fitted on all training images by ``train``)
and the ensemble that averages the k fold models' softmax outputs. Writes
``metrics/test.json`` (accuracies in percent) and ``plots/test/predictions.csv``
(actual and predicted label per test image, for the confusion matrix).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from digits import cli
from digits.files import atomic_file, write_json
from digits.layout import FINAL_MODEL, FOLD_MODELS, PREDICTIONS, PREPARED, RAW, TEST_METRICS
from digits.mnist import read_source
from digits.model import INFERENCE_BATCH_SIZE, load_model
from digits.params import load_params
from digits.prepared import load_prepared


def load_models(paths: list[Path]) -> list:
    # Each model traces its own predict function once; TensorFlow's retracing warning
    # assumes a single model and would only be noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return [load_model(path) for path in paths]


def ensemble_probabilities(models: list, x: np.ndarray) -> np.ndarray:
    """Mean of the models' softmax outputs: [N, 10]."""
    return np.mean([model.predict(x, batch_size=INFERENCE_BATCH_SIZE, verbose=0) for model in models], axis=0)


def test_metrics(labels: np.ndarray, probabilities: np.ndarray, ensemble: np.ndarray, data: dict) -> dict:
    """Accuracy (percent) and cross-entropy loss of the final model, and the ensemble's accuracy."""
    eps = 1e-7  # as Keras clips before the log
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "accuracy": round(100 * float((probabilities.argmax(axis=1) == labels).mean()), 4),
        "loss": round(float(-np.log(np.clip(picked, eps, 1)).mean()), 6),
        "ensemble_accuracy": round(100 * float((ensemble.argmax(axis=1) == labels).mean()), 4),
        "data": data,
    }


def main() -> None:
    load_params()  # validates params.yaml, like every stage
    x, y = load_prepared(PREPARED / "test.npz")
    labels = y.argmax(axis=1)
    fold_paths = sorted(FOLD_MODELS.glob("fold_*.keras"), key=lambda p: int(p.stem.split("_")[1]))
    final, *folds = load_models([FINAL_MODEL, *fold_paths])
    probabilities = ensemble_probabilities([final], x)
    ensemble = ensemble_probabilities(folds, x)
    source = read_source(RAW)["source"]
    metrics = test_metrics(labels, probabilities, ensemble, {"source": source, "images": len(x)})
    with atomic_file(PREDICTIONS) as tmp:
        pd.DataFrame({"actual": labels, "predicted": probabilities.argmax(axis=1)}).to_csv(tmp, index=False)
    write_json(TEST_METRICS, metrics)
    print(
        f"evaluate: test accuracy {metrics['accuracy']:.2f}% (loss {metrics['loss']:.4f}), "
        f"{len(folds)}-fold ensemble {metrics['ensemble_accuracy']:.2f}%, on {len(x):,} {source} images"
    )


if __name__ == "__main__":
    cli.run(main)
