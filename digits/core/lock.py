"""What ``dvc.lock`` records of a stage's last good run: its params and its outputs."""

from __future__ import annotations

from pathlib import Path

import yaml

LOCK = Path("dvc.lock")


def locked_stage(stage: str, lock: Path = LOCK) -> dict:
    """The stage's entry in ``dvc.lock`` (``cmd``, ``deps``, ``params``, ``outs``); {} if none."""
    try:
        entry = yaml.safe_load(lock.read_text())["stages"][stage]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}
    return entry if isinstance(entry, dict) else {}


def locked_params(stage: str, lock: Path = LOCK) -> dict:
    """The params the stage's last good run read, as dotted keys or sections: ``{"epochs": 10, ...}``."""
    return locked_stage(stage, lock).get("params", {}).get("params.yaml", {})


def locked_outputs(stage: str, lock: Path = LOCK) -> dict[Path, str]:
    """The stage's outputs: path -> md5 (``<md5>.dir`` for a folder)."""
    return {
        Path(out["path"]): out["md5"] for out in locked_stage(stage, lock).get("outs", []) if "md5" in out
    }


def locked_stages(lock: Path = LOCK) -> list[str]:
    try:
        return list(yaml.safe_load(lock.read_text())["stages"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []
