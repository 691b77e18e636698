"""Named recipes: each a set of params, one ``dvc exp run -S … -S …`` away from the default.

The default params are the tutorial's protocol; a recipe changes only what it lists here,
so the documented command line, the benchmark (``bench/recipe.py``) and the tests all
read the recipe from this one place.
"""

from __future__ import annotations

import json
from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # Conv + BatchNorm blocks with dropout, seeded augmentation in one warp, AdamW with
    # warm-up and cosine decay, an average of the weights (EMA): chosen on the CV mean of
    # full MNIST (README, "A modern recipe").
    "modern": {
        "model.arch": "modern",
        "model.width": 32,
        "model.dropout": 0.1,
        "model.label_smoothing": 0.1,
        "model.pool": "same",
        "augment.rotation": 10.0,
        "augment.zoom": 0.1,
        "augment.shift": 0.1,
        "augment.fused": True,
        "optimizer.name": "adamw",
        "optimizer.learning_rate": 0.003,
        "optimizer.momentum": 0.9,  # AdamW's beta_1
        "optimizer.weight_decay": 0.01,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_epochs": 1,
        "optimizer.ema": 0.9973,  # a window of about one epoch: 1 - 128/48,000
        "batch_size": 128,
        "epochs": 14,
    },
}


def overrides(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's params as ``dotted.key -> value``, with ``extra`` on top."""
    return {**RECIPES[name], **(extra or {})}


def exp_run_args(settings: dict[str, Any]) -> list[str]:
    """``dvc exp run`` arguments that set ``settings``: ``["-S", "epochs=12", …]``."""
    return [arg for key, value in settings.items() for arg in ("-S", f"{key}={text(value)}")]


def text(value: Any) -> str:
    """A value as ``-S`` takes it: ``null``, ``true``, ``0.1``, ``adamw`` (DVC reads ``None`` as a string)."""
    return value if isinstance(value, str) else json.dumps(value)


def command(name: str, extra: dict[str, Any] | None = None) -> str:
    """The command line of a recipe (with ``extra`` on top): the README documents ``command(name)``."""
    return " ".join(["dvc", "exp", "run", *exp_run_args(overrides(name, extra))])


def minutes(seconds: float) -> str:
    """``1012.4`` -> ``16 min 52 s``."""
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s"


def explored_table(rows: list[dict[str, str]]) -> str:
    """The README's table of ``results/<recipe>/explored.csv``: what was tried, its CV and time."""
    lines = [
        "| changed | epochs | width | CV mean (%) | CV std | wall time | CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        changed = row["settings"] if row["settings"].startswith("(") else f"`{row['settings']}`"
        lines.append(
            f"| {changed} | {row['epochs']} | {row['width']} | {float(row['cv_mean']):.2f} "
            f"| {float(row['cv_std']):.2f} | {minutes(float(row['wall_seconds']))} | {row['cpu']} |"
        )
    return "\n".join(lines)


def results_row(label: str, cv: dict, test: dict, wall: str) -> str:
    """A row of the README's table of recipes, from ``metrics/cv.json`` and ``metrics/test.json``."""
    return (
        f"| {label} | {cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f} | {test['accuracy']:.2f} "
        f"| {test['ensemble_accuracy']:.2f} | {wall} |"
    )
