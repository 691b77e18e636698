"""The params.yaml contract: each key declared once, read the way DVC reads it.

Each key is declared below once, with its type, range, default and help (a
pydantic field). ``params.yaml`` is parsed with ruamel.yaml's safe loader, as
DVC parses it (YAML 1.2), so ``seed: 010`` is 10 here as in ``dvc.lock``, not 8
as YAML 1.1 would read it. Every key must be present (no hidden defaults), no
unknown key is allowed (``dvc exp run -S +key=...`` adds misspelled keys
silently), and a bad value stops with a one-line :class:`ParamsError` naming the
key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from digits.core.errors import ParamsError

PARAMS_FILE = Path("params.yaml")

# Seeds feed NumPy's and scikit-learn's generators, which take 0 .. 2**32 - 1; fold k
# uses seed + k, so the seed stays below 2**31 and the folds below 100.
MAX_SEED = 2**31 - 1
SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://[^\s:/]+:\d{1,5}$")


class _Section(BaseModel):
    # strict: `epochs: true` or `epochs: 1.5` is a typo, not a number; no NaN or inf anywhere.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DataParams(_Section):
    source: Literal["auto", "mnist", "sample"] = Field(
        "auto", description="auto: full MNIST if it can be had, else the bundled 5,000-digit sample"
    )
    limit: int | None = Field(
        None, ge=10, description="a stratified, seeded subset of that many training images; null: all"
    )


class CVParams(_Section):
    folds: int = Field(5, ge=2, le=99, description="k of the k-fold cross-validation")
    n_jobs: int | None = Field(
        None, ge=1, le=256, description="fits run side by side; null: one per core (results unchanged)"
    )
    backend: Literal["loky", "dask"] = Field(
        "loky", description="loky: local processes; dask: a Dask cluster (results unchanged)"
    )
    scheduler: str | None = Field(
        None, description="Dask scheduler address, tcp://host:port; null: $DASK_SCHEDULER_ADDRESS"
    )


class ModelParams(_Section):
    arch: Literal["baseline", "batchnorm", "deeper", "modern"] = Field(
        "baseline",
        description="baseline (the tutorial's CNN), batchnorm, deeper, modern (digits/training/model.py)",
    )
    width: int = Field(32, ge=1, le=512, description="filters of the first conv layer (later blocks: 2x, 4x)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout rate before each dense layer; 0: none")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    pool: Literal["valid", "same"] = Field(
        "valid",
        description="max-pool padding; same keeps an odd map's last row and column (7x7 -> 4x4)",
    )


class AugmentParams(_Section):
    rotation: float = Field(0.0, ge=0, le=180, description="random rotation, up to ± degrees")
    zoom: float = Field(0.0, ge=0, lt=1, description="random zoom, up to ± this fraction")
    shift: float = Field(0.0, ge=0, lt=1, description="random shift, up to ± this fraction of the side")
    elastic: float = Field(
        0.0,
        ge=0,
        le=4,
        description="elastic distortion (Simard 2003): rms move per axis in pixels, smoothed over 4; 0: none",
    )
    fused: bool = Field(
        False, description="true: all four in one warp, resampled once; false: Keras' layers, one by one"
    )


class OptimizerParams(_Section):
    name: Literal["sgd", "adamw"] = Field("sgd", description="sgd (with momentum) or adamw")
    learning_rate: float = Field(0.01, gt=0, le=1, description="learning rate (the peak, with a schedule)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum, or AdamW's beta_1")
    weight_decay: float = Field(
        0.0, ge=0, lt=1, description="decoupled weight decay, per step and times the rate; 0: none"
    )
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant, or cosine: linear warm-up, then cosine decay to 0"
    )
    warmup_epochs: int = Field(0, ge=0, le=1000, description="epochs of linear warm-up (cosine only)")
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="momentum of a moving average of the weights, validated and saved; 0: off",
    )


class PlotParams(_Section):
    misclassified: int = Field(36, ge=0, le=100, description="misclassified test digits shown")


class Params(_Section):
    seed: int = Field(
        1, ge=0, le=MAX_SEED, description="seeds the subset, the folds and every model (fold k: seed + k)"
    )
    epochs: int = Field(10, ge=1, le=1000, description="training epochs, for each fold and the final fit")
    batch_size: int = Field(32, ge=1, le=60_000, description="images per optimizer step")
    tta: int = Field(
        0, ge=0, le=4, description="test-time shifts: mean softmax over ±tta-pixel shifts (CV, test); 0: off"
    )
    data: DataParams = DataParams()
    cv: CVParams = CVParams()
    model: ModelParams = ModelParams()
    augment: AugmentParams = AugmentParams()
    optimizer: OptimizerParams = OptimizerParams()
    plot: PlotParams = PlotParams()


def _check_together(params: Params) -> Params:
    """The checks that involve more than one key, or a pattern."""
    limit, folds = params.data.limit, params.cv.folds
    if limit is not None and limit < 10 * folds:
        raise ParamsError(
            f"params.yaml: data.limit is {limit}; it must be null or at least 10 x cv.folds = {10 * folds}"
        )
    optimizer = params.optimizer
    warmup = optimizer.warmup_epochs
    if warmup and (optimizer.schedule != "cosine" or warmup >= params.epochs):
        raise ParamsError(
            f"params.yaml: optimizer.warmup_epochs is {optimizer.warmup_epochs}; it must be 0, or with "
            f"optimizer.schedule: cosine fewer than epochs ({params.epochs})"
        )
    scheduler = params.cv.scheduler
    if scheduler is not None and not SCHEDULER_ADDRESS.match(scheduler):
        raise ParamsError(
            f"params.yaml: cv.scheduler is {scheduler!r}; it must be null or a Dask scheduler "
            "address such as tcp://10.0.0.5:8786"
        )
    return params


def fields(model: type[BaseModel] = Params, prefix: str = "") -> dict[str, FieldInfo]:
    """Every key as ``dotted.name -> field``, in the order of the file."""
    flat: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            flat.update(fields(info.annotation, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = info
    return flat


def allowed(info: FieldInfo) -> str:
    """What a field accepts, in words: ``an integer from 1 to 1000``, ``one of a, b``."""
    kind = info.annotation
    nullable = get_origin(kind) is not Literal and type(None) in get_args(kind)
    if nullable:
        kind = next(arg for arg in get_args(kind) if arg is not type(None))
    if get_origin(kind) is Literal:
        text = f"one of {', '.join(map(str, get_args(kind)))}"
    else:
        text = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        bounds = [
            f"{symbol} {getattr(m, name)}"
            for m in info.metadata
            for kind, symbol, name in ((Ge, ">=", "ge"), (Gt, ">", "gt"), (Le, "<=", "le"), (Lt, "<", "lt"))
            if isinstance(m, kind)
        ]
        if bounds:
            text += " " + " and ".join(bounds)
    return f"null or {text}" if nullable else text


def _flatten(tree: dict, known: dict[str, FieldInfo], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and any(k.startswith(dotted + ".") for k in known):
            flat.update(_flatten(value, known, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def parse_params(tree: Any) -> Params:
    """Validate the parsed YAML of params.yaml and return it typed."""
    if not isinstance(tree, dict):
        raise ParamsError("params.yaml: expected a mapping of keys; see the README for the keys")
    known = fields()
    flat = _flatten(tree, known)
    for key in flat:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
            raise ParamsError(f"params.yaml: unknown key {key!r}; {hint}")
    for key, info in known.items():
        if key not in flat:
            raise ParamsError(f"params.yaml: {key} is missing; it must be {allowed(info)}")
    try:
        params = Params.model_validate(tree)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        value = error["input"]
        raise ParamsError(f"params.yaml: {key} is {value!r}; it must be {allowed(known[key])}") from None
    return _check_together(params)


def check_environment(params: Params) -> None:
    """What the params need from outside params.yaml."""
    if params.cv.backend == "dask" and not (params.cv.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")):
        raise ParamsError(
            "params.yaml: cv.backend is 'dask' but cv.scheduler is null and DASK_SCHEDULER_ADDRESS "
            "is unset; give the scheduler address (tcp://host:8786) or use cv.backend: loky"
        )


def read_yaml(text: str) -> Any:
    """Parse YAML exactly as DVC parses params.yaml: ruamel.yaml, safe loader, YAML 1.2."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``."""
    from ruamel.yaml import YAMLError

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read it ({exc.strerror}); run from the project root") from None
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        tree = read_yaml(text)
    except YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path}: not valid YAML{line}; fix the syntax") from None
    return parse_params(tree)


def markdown_table() -> str:
    """The README's table of params, made from the declarations above."""

    def cell(value: Any) -> str:
        if isinstance(value, bool):  # as YAML spells it
            return str(value).lower()
        return "null" if value is None else f"`{value}`" if isinstance(value, str) else str(value)

    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for key, info in fields().items():
        rows.append(f"| `{key}` | {cell(info.default)} | {allowed(info)} | {info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
