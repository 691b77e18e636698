"""Stage ``evaluate``: the final test, once, on the held-out test set.

Evaluates ``models/model.keras`` (fitted on all training images by ``train``)
and the ensemble that averages the k fold models' softmax outputs. Writes
``metrics/test.json`` (accuracies in percent) and ``plots/test/predictions.csv``
(actual and predicted label per test image, for the confusion matrix).
"""

from __future__ import annotations

import pandas as pd

from digits.core import cli
from digits.core.files import atomic_file, write_json
from digits.core.layout import FINAL_MODEL, FOLD_MODELS, PREDICTIONS, PREPARED, RAW, TEST_METRICS
from digits.core.mnist import read_source
from digits.core.params import load_params
from digits.data.prepared import load_prepared
from digits.reporting.evaluation import ensemble_probabilities, load_models, test_metrics


def main() -> None:
    params = load_params()
    x, y = load_prepared(PREPARED / "test.npz")
    labels = y.argmax(axis=1)
    fold_paths = sorted(FOLD_MODELS.glob("fold_*.keras"), key=lambda p: int(p.stem.split("_")[1]))
    final, *folds = load_models([FINAL_MODEL, *fold_paths])
    probabilities = ensemble_probabilities([final], x, params.tta)
    ensemble = ensemble_probabilities(folds, x, params.tta)
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
