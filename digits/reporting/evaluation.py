"""The final test: the final model and the fold ensemble on the held-out test set.

Accuracies are percent; the ensemble averages the fold models' softmax outputs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from digits.training.model import load_model
from digits.training.tta import probabilities


def load_models(paths: list[Path]) -> list:
    # Each model traces its own predict function once; TensorFlow's retracing warning
    # assumes a single model and would only be noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return [load_model(path) for path in paths]


def ensemble_probabilities(models: list, x: np.ndarray, tta: int = 0) -> np.ndarray:
    """Mean of the models' softmax outputs, each with the shifts of ``tta``: [N, 10]."""
    return np.mean([probabilities(model, x, tta) for model in models], axis=0)


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
