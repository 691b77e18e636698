"""Named recipes: each a set of params, one ``dvc exp run -S … -S …`` away from the default.

The default params are the tutorial's protocol; a recipe changes only what it lists here,
so the documented command line, the benchmark (``bench/recipe.py``) and the tests all
read the recipe from this one place.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, Any]] = {
    # Conv + BatchNorm blocks with dropout, seeded augmentation, AdamW with warm-up and
    # cosine decay: chosen on the CV mean of full MNIST (README, "A modern recipe").
    "modern": {
        "model.arch": "modern",
        "model.width": 32,
        "model.dropout": 0.25,
        "model.label_smoothing": 0.1,
        "augment.rotation": 10.0,
        "augment.zoom": 0.1,
        "augment.shift": 0.1,
        "optimizer.name": "adamw",
        "optimizer.learning_rate": 0.003,
        "optimizer.weight_decay": 0.01,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_epochs": 1,
        "batch_size": 128,
        "epochs": 15,
    },
}


def overrides(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's params as ``dotted.key -> value``, with ``extra`` on top."""
    return {**RECIPES[name], **(extra or {})}


def exp_run_args(settings: dict[str, Any]) -> list[str]:
    """``dvc exp run`` arguments that set ``settings``: ``["-S", "epochs=12", …]``."""
    return [arg for key, value in settings.items() for arg in ("-S", f"{key}={value}")]


def command(name: str) -> str:
    """The documented command line of a recipe."""
    return " ".join(["dvc", "exp", "run", *exp_run_args(overrides(name))])
