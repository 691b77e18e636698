"""Test-time augmentation: a model's mean softmax over an image and its shifts by a few pixels.

``tta`` (params.yaml) is the shift in pixels: 1 averages the image and its four 1-pixel shifts
(up, down, left, right), 0 is the model alone. Validation scores (``train``) and the final test
(``evaluate``) use it alike, so CV and test measure the same predictor.
"""

from __future__ import annotations

import numpy as np

from digits.training.model import INFERENCE_BATCH_SIZE


def shifted(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``x`` [N, H, W, C] moved by ``rows`` down and ``cols`` right; what comes in is black."""
    out = np.zeros_like(x)
    height, width = x.shape[1:3]
    out[:, max(rows, 0) : height + min(rows, 0), max(cols, 0) : width + min(cols, 0)] = x[
        :, max(-rows, 0) : height + min(-rows, 0), max(-cols, 0) : width + min(-cols, 0)
    ]
    return out


def views(shift: int) -> list[tuple[int, int]]:
    """The (rows, cols) moves averaged: none, then ``shift`` pixels each way."""
    return [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift else [])


def probabilities(model, x: np.ndarray, shift: int = 0) -> np.ndarray:
    """``model``'s softmax for ``x`` [N, 28, 28, 1], averaged over the ``views`` of ``shift``: [N, 10]."""
    outputs = [
        model.predict(shifted(x, *move), batch_size=INFERENCE_BATCH_SIZE, verbose=0) for move in views(shift)
    ]
    return outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)
