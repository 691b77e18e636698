"""The params.yaml contract: read once, validated, typed.

Every stage calls :func:`load_params` before doing any work. A bad value or an
unknown key (``dvc exp run -S`` silently adds misspelled keys) stops the stage
with a one-line :class:`ParamsError` naming the key, the value and what is
allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from digits.errors import ParamsError

PARAMS_FILE = Path("params.yaml")

SOURCES = ("auto", "mnist", "sample")
ARCHS = ("baseline", "batchnorm", "deeper")
BACKENDS = ("loky", "dask")


@dataclass(frozen=True)
class DataParams:
    source: str
    limit: int | None


@dataclass(frozen=True)
class CVParams:
    folds: int
    n_jobs: int | None
    backend: str
    scheduler: str | None


@dataclass(frozen=True)
class ModelParams:
    arch: str


@dataclass(frozen=True)
class OptimizerParams:
    learning_rate: float
    momentum: float


@dataclass(frozen=True)
class PlotParams:
    misclassified: int


@dataclass(frozen=True)
class Params:
    seed: int
    epochs: int
    batch_size: int
    data: DataParams
    cv: CVParams
    model: ModelParams
    optimizer: OptimizerParams
    plot: PlotParams


@dataclass(frozen=True)
class _Rule:
    kind: tuple[type, ...]
    allowed: str
    ok: Callable[[Any], bool] = lambda value: True
    nullable: bool = False


_INT = (int,)
_NUMBER = (int, float)
_STR = (str,)

# Dotted key -> rule. The order is the order of the file.
RULES: dict[str, _Rule] = {
    "seed": _Rule(_INT, "an integer >= 0", lambda v: v >= 0),
    "epochs": _Rule(_INT, "an integer >= 1", lambda v: v >= 1),
    "batch_size": _Rule(_INT, "an integer >= 1", lambda v: v >= 1),
    "data.source": _Rule(_STR, f"one of {', '.join(SOURCES)}", lambda v: v in SOURCES),
    "data.limit": _Rule(_INT, "null or an integer >= 10 x cv.folds", nullable=True),
    "cv.folds": _Rule(_INT, "an integer >= 2", lambda v: v >= 2),
    "cv.n_jobs": _Rule(_INT, "null (all cores) or an integer >= 1", lambda v: v >= 1, nullable=True),
    "cv.backend": _Rule(_STR, f"one of {', '.join(BACKENDS)}", lambda v: v in BACKENDS),
    "cv.scheduler": _Rule(_STR, "null or a Dask scheduler address (tcp://host:port)", nullable=True),
    "model.arch": _Rule(_STR, f"one of {', '.join(ARCHS)}", lambda v: v in ARCHS),
    "optimizer.learning_rate": _Rule(_NUMBER, "a number > 0", lambda v: v > 0),
    "optimizer.momentum": _Rule(_NUMBER, "a number in [0, 1)", lambda v: 0 <= v < 1),
    "plot.misclassified": _Rule(_INT, "an integer from 0 to 100", lambda v: 0 <= v <= 100),
}


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(rule.startswith(dotted + ".") for rule in RULES):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _check(key: str, value: Any) -> Any:
    rule = RULES[key]
    if value is None and rule.nullable:
        return None
    if rule.kind is _NUMBER and isinstance(value, str):
        # PyYAML (YAML 1.1) reads 1e-3 as a string; DVC's YAML 1.2 reads a number.
        try:
            value = float(value)
        except ValueError:
            pass
    # bool is an int in Python, but `epochs: true` is a typo, not a number.
    if isinstance(value, bool) or not isinstance(value, rule.kind) or not rule.ok(value):
        raise ParamsError(f"params.yaml: {key} is {value!r}; it must be {rule.allowed}")
    return float(value) if rule.kind is _NUMBER else value


def parse_params(tree: Any) -> Params:
    """Validate the parsed YAML of params.yaml and return it typed."""
    if not isinstance(tree, dict):
        raise ParamsError("params.yaml: expected a mapping of keys; see the README for the keys")
    flat = _flatten(tree)
    for key in flat:
        if key not in RULES:
            close = difflib.get_close_matches(key, RULES, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(RULES)}"
            raise ParamsError(f"params.yaml: unknown key {key!r}; {hint}")
    for key in RULES:
        if key not in flat:
            raise ParamsError(f"params.yaml: {key} is missing; it must be {RULES[key].allowed}")
    v = {key: _check(key, value) for key, value in flat.items()}
    if v["data.limit"] is not None and v["data.limit"] < 10 * v["cv.folds"]:
        raise ParamsError(
            f"params.yaml: data.limit is {v['data.limit']}; it must be null or at least "
            f"10 x cv.folds = {10 * v['cv.folds']}"
        )
    return Params(
        seed=v["seed"],
        epochs=v["epochs"],
        batch_size=v["batch_size"],
        data=DataParams(source=v["data.source"], limit=v["data.limit"]),
        cv=CVParams(
            folds=v["cv.folds"],
            n_jobs=v["cv.n_jobs"],
            backend=v["cv.backend"],
            scheduler=v["cv.scheduler"],
        ),
        model=ModelParams(arch=v["model.arch"]),
        optimizer=OptimizerParams(
            learning_rate=v["optimizer.learning_rate"], momentum=v["optimizer.momentum"]
        ),
        plot=PlotParams(misclassified=v["plot.misclassified"]),
    )


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read it ({exc.strerror}); run from the project root") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path}: not valid YAML{line}; fix the syntax") from None
    return parse_params(tree)


def main() -> None:
    params = load_params()
    print(f"params.yaml: valid ({params.cv.folds}-fold, {params.epochs} epochs, {params.model.arch})")


if __name__ == "__main__":
    from digits import cli

    cli.run(main)
