"""The data a run used, named for people: in the review, the plots' legends and the page.

The stages record it as ``{"source": "mnist", "images": 60000}`` in their metrics.
"""

from __future__ import annotations

from collections.abc import Mapping

SOURCES = {"mnist": "full MNIST", "sample": "MNIST sample"}


def data_label(data: Mapping[str, object]) -> str:
    """``60,000 full MNIST images``, from a stage's recorded ``data``."""
    return f"{data['images']:,} {SOURCES.get(data['source'], data['source'])} images"
