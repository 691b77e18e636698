"""Whether a full-MNIST run that changed the committed results ran the same inputs on another CPU.

TensorFlow's oneDNN kernels are chosen by the CPU's instruction set, so another CPU type rounds
differently and trains other model bytes from the same inputs. That run may change only what
``train`` and the stages after it wrote, and its metrics must stay close to the committed ones;
anything else means the committed results are not those of the committed inputs.

    python .ci/other_cpu.py REPO   # exit 1, with the reason, unless it is only the CPU type
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

FIRST_FIT = "train"  # the first stage whose outputs depend on TensorFlow's rounding
RESULTS = ("dvc.lock", "metrics/", "plots/")
METRICS = {"metrics/cv.json": ["accuracy_mean"], "metrics/test.json": ["accuracy", "ensemble_accuracy"]}
CLOSE = 0.5  # percentage points: what rounding moved them by is about 0.1


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def without_rounded(lock: dict) -> dict:
    """``lock`` without the hashes of what the fits and the stages after them wrote."""
    stages = lock["stages"]
    rounded, names = set(), list(stages)
    for name in names[names.index(FIRST_FIT) :]:  # dvc.lock lists the stages in dvc.yaml's order
        rounded |= {out["path"] for out in stages[name].get("outs", [])}
    for stage in stages.values():
        for entry in stage.get("deps", []) + stage.get("outs", []):
            if entry["path"] in rounded:
                for key in ("md5", "hash", "size", "nfiles"):
                    entry.pop(key, None)
    return lock


def reasons(repo: Path) -> list[str]:
    changed = [line[3:] for line in git(repo, "status", "--porcelain").splitlines()]
    others = [path for path in changed if not path.startswith(RESULTS)]
    if others:
        return [f"files other than the results changed: {', '.join(others)}"]
    committed = without_rounded(yaml.safe_load(git(repo, "show", "HEAD:dvc.lock")))
    ran = without_rounded(yaml.safe_load((repo / "dvc.lock").read_text()))
    if committed != ran:
        return ["dvc.lock's inputs (commands, params, code, data) are not the committed ones"]
    found = []
    for path, keys in METRICS.items():
        before, after = json.loads(git(repo, "show", f"HEAD:{path}")), json.loads((repo / path).read_text())
        found += [
            f"{path}: {key} {after[key]} against {before[key]} committed"
            for key in keys
            if abs(after[key] - before[key]) > CLOSE
        ]
    return found


def main() -> None:
    found = reasons(Path(sys.argv[1]))
    if found:
        sys.exit("other_cpu: not the CPU type alone: " + "; ".join(found))
    print("other_cpu: the committed inputs, only the fits' outputs changed, metrics within 0.5 points")


if __name__ == "__main__":
    main()
