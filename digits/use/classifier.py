"""The trained model as ``predict`` and the web page use it: checked when loaded, then asked.

A model file can be damaged, made for other inputs, or end in logits rather than
probabilities. Each is refused with one line naming the file, before any answer is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from digits.core.errors import DataError
from digits.core.layout import FINAL_MODEL
from digits.core.mnist import IMAGE_SHAPE, NUM_CLASSES

# Below this top probability the answer is "unsure: 4 or 9". With the full-MNIST baseline it
# flags about half of the wrong answers on the MNIST test set and under 1% of the right ones.
UNSURE_BELOW = 0.8
TOLERANCE = 1e-3  # how far from 1 a row of probabilities may sum
FIX = "give a model trained by this pipeline (dvc repro)"


class Answer(NamedTuple):
    """The model's reading of one digit: every digit with its probability, best first."""

    ranking: list[tuple[int, float]]

    @property
    def unsure(self) -> bool:
        return self.ranking[0][1] < UNSURE_BELOW

    @property
    def label(self) -> str:
        """What to tell a person: ``7``, or ``unsure: 4 or 9``."""
        (first, _), (second, _) = self.ranking[:2]
        return f"unsure: {first} or {second}" if self.unsure else str(first)


class Classifier:
    """A model that reads [28, 28] digits in 0..1, checked to give one probability per class."""

    def __init__(self, model, path: Path) -> None:
        self.model = model
        self.path = Path(path)
        self._check_shapes()
        # Blank, full and random fields: a softmax model gives probabilities for all of them.
        probe = np.random.default_rng(0).random((3, *IMAGE_SHAPE), dtype=np.float32)
        probe[0], probe[1] = 0, 1
        self.probabilities(probe)

    @classmethod
    def load(cls, path: Path) -> Classifier:
        """The model at ``path``, checked; any problem is a ``DataError`` naming the file."""
        from digits.training.model import load_model  # TensorFlow starts only when a model is wanted

        path = Path(path)
        if path.resolve() == FINAL_MODEL.resolve():  # the pipeline's own: the pipeline's advice
            model = load_model(path)
        else:  # a file the user named: advice about that file
            model = load_model(path, missing="no such file; check the path given to --model", fix=FIX)
        try:
            return cls(model, path)
        except DataError:
            raise
        except Exception as exc:  # a model that loads but cannot be run on a digit
            raise DataError(
                f"{path}: the model fails on a 28x28 digit ({type(exc).__name__}); {FIX}"
            ) from None

    def _check_shapes(self) -> None:
        try:
            inputs, outputs = tuple(self.model.input_shape), tuple(self.model.output_shape)
            if not all(d is None or isinstance(d, int) for d in inputs + outputs):
                raise ValueError("a list of shapes: several inputs or outputs")
        except (AttributeError, TypeError, ValueError):  # several inputs or outputs, or none
            raise DataError(f"{self.path}: not a model with one input and one output; {FIX}") from None
        if inputs[1:] not in ((*IMAGE_SHAPE, 1), IMAGE_SHAPE):
            shape = "x".join(str(d) for d in inputs[1:])
            raise DataError(f"{self.path}: a model for {shape} inputs, not 28x28x1 digits; {FIX}")
        if outputs[1:] != (NUM_CLASSES,):
            shape = "x".join(str(d) for d in outputs[1:])
            raise DataError(f"{self.path}: a model with {shape} outputs, not {NUM_CLASSES} classes; {FIX}")

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """digits [N, 28, 28] -> probabilities [N, 10], each row checked to be a distribution."""
        from digits.training.model import INFERENCE_BATCH_SIZE

        x = np.asarray(digits, np.float32)[..., np.newaxis]
        # predict_on_batch, not predict: the same numbers without predict's ~90 ms set-up per call.
        parts = [
            np.asarray(self.model.predict_on_batch(x[i : i + INFERENCE_BATCH_SIZE]))
            for i in range(0, len(x), INFERENCE_BATCH_SIZE)
        ]
        result = np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)
        if not np.isfinite(result).all():
            raise DataError(f"{self.path}: the model outputs NaN or infinity (broken weights); {FIX}")
        sums = result.sum(axis=1)
        if result.size and (result.min() < 0 or np.abs(sums - 1).max() > TOLERANCE):
            raise DataError(
                f"{self.path}: the model's outputs are not probabilities (they range "
                f"{result.min():.3g}..{result.max():.3g} and sum to {sums[0]:.3g}): logits? "
                f"its last layer must be a softmax; {FIX}"
            )
        return result

    def classify(self, digits: np.ndarray) -> list[Answer]:
        """digits [N, 28, 28] in 0..1 -> one answer per digit."""
        probabilities = self.probabilities(digits)
        order = np.argsort(-probabilities, axis=1, kind="stable")
        return [
            Answer([(int(d), float(p[d])) for d in row]) for row, p in zip(order, probabilities, strict=True)
        ]
