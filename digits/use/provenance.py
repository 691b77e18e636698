"""What a model was trained on and how well it did, from the pipeline's own records.

The records are ``metrics/cv.json`` (train: the data, the CV accuracy) and
``metrics/test.json`` (evaluate: the test accuracy). They describe a model file only when
``dvc.lock`` records that file's bytes as train's final model and both metrics files as
they are now: a model copied elsewhere keeps its provenance, a model from another run or
metrics mid-run (``"partial"``) do not get any.
"""

from __future__ import annotations

import json
from pathlib import Path

from digits.core.files import file_md5
from digits.core.layout import CV_METRICS, FINAL_MODEL, TEST_METRICS
from digits.core.lock import LOCK, locked_outputs
from digits.data import data_label


def provenance(model: Path, lock: Path = LOCK) -> str | None:
    """One sentence on ``model``'s training data and scores; None if the records are not its."""
    recorded = locked_outputs("train", lock) | locked_outputs("evaluate", lock)
    try:
        if any(file_md5(path) != recorded.get(path) for path in (CV_METRICS, TEST_METRICS)):
            return None
        if file_md5(model) != recorded.get(FINAL_MODEL):
            return None
        cv, test = (json.loads(path.read_text()) for path in (CV_METRICS, TEST_METRICS))
        return (
            f"trained on {data_label(cv['data'])}: {len(cv['fold_accuracy'])}-fold CV "
            f"{cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f} %, test {test['accuracy']:.2f} % "
            f"on {test['data']['images']:,} held-out images"
        )
    except (OSError, ValueError, KeyError, TypeError):  # a record missing or not as the stages write it
        return None
