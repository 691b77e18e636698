"""Getting the data (download: MNIST or the sample), preparing it (preprocess: arrays for Keras),
and naming it for people: the stages record the data a run used as
``{"source": "mnist", "images": 60000}`` in their metrics; :func:`data_label` is how the
review, the plots' legends and the page say it.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCES = {"mnist": "full MNIST", "sample": "MNIST sample"}


def data_label(data: Mapping[str, object]) -> str:
    """``60,000 full MNIST images``, from a stage's recorded ``data``."""
    return f"{data['images']:,} {SOURCES.get(data['source'], data['source'])} images"
