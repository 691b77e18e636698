"""Run a recipe on full MNIST with its documented ``dvc exp run`` line, and record the results.

    python bench/recipe.py modern                 # the recipe: results/modern/ metrics.json,
                                                  # params.yaml, review/
    python bench/recipe.py modern -S epochs=8 …   # a variant of it, explored on CV

Every run adds a row to ``results/modern/explored.csv``: what it changed, epochs, width,
CV mean and std, wall time and the CPU it was measured on (times compare only on one CPU
type). No test accuracy there: variants are chosen on CV alone.

Run it in a clone of this project with full MNIST (``MNIST_DIR``) and nothing else
running: the wall time is part of the result. ``dvc repro preprocess`` runs first
(untimed); then the timed ``dvc exp run`` (train, evaluate, plot) applies the experiment
to that workspace, as ``dvc exp run`` does. The recipe's own run also writes
``review/``: ``digits-review`` of the experiment against the tutorial's committed results
(``--base``, default HEAD).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

from digits.core.files import write_json
from digits.core.layout import CV_METRICS, RAW, TEST_METRICS
from digits.core.mnist import read_source
from digits.core.params import PARAMS_FILE, load_params, read_yaml
from digits.reporting.recipes import RECIPES, command, exp_run_args, overrides, text

EXPLORED_COLUMNS = ["settings", "epochs", "width", "cv_mean", "cv_std", "wall_seconds", "cpu"]


def setting(text: str) -> tuple[str, object]:
    """``key=value`` of ``-S``, the value read as YAML (``null``, numbers, words)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected key=value, e.g. epochs=8")
    return key, read_yaml(value)


def machine() -> dict[str, object]:
    """What the wall time was measured on: CPU, cores, TensorFlow, and the load before the run.

    The CPU is its model name and its widest vector extension ("AMD EPYC, AVX-512"): hosts
    of one name differ in it, and so in speed (the recipe's fits: twice).
    """
    first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]  # every core's block is alike
    info = {
        key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())
    }
    flags = info.get("flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return {
        "cpu": f"{info.get('model name') or platform.machine()}, {vector}",  # arm64: no model name
        "cores": os.cpu_count(),
        "tensorflow": version("tensorflow-cpu"),  # the lock's build; metadata: no TensorFlow start-up
        "load_before": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("-S", dest="extra", type=setting, action="append", default=[], help="key=value")
    parser.add_argument("--results", type=Path, help="folder for the results (default: results/RECIPE)")
    parser.add_argument("--base", default="HEAD", help="the tutorial's revision, for the review")
    args = parser.parse_args()
    out = args.results or Path("results") / args.recipe
    settings = overrides(args.recipe, dict(args.extra))
    table = out / "explored.csv"
    if table.is_file() and next(csv.reader(table.open()), None) != EXPLORED_COLUMNS:
        sys.exit(
            f"recipe: {table} has other columns than {','.join(EXPLORED_COLUMNS)} (an older "
            "bench/recipe.py wrote it); add the missing ones or move it away, and run it again"
        )

    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(PARAMS_FILE)]).returncode:
        sys.exit(
            f"recipe: {PARAMS_FILE} differs from HEAD, the run would inherit it; git checkout {PARAMS_FILE}"
        )
    subprocess.run(["dvc", "repro", "preprocess"], check=True)
    if read_source(RAW)["source"] != "mnist" or load_params().data.limit is not None:
        sys.exit("recipe: needs all of full MNIST; set MNIST_DIR (and data.limit: null) and run it again")
    about = machine()
    start = time.perf_counter()
    subprocess.run(["dvc", "exp", "run", *exp_run_args(settings)], check=True)
    wall = round(time.perf_counter() - start, 1)

    cv, test = (json.loads(path.read_text()) for path in (CV_METRICS, TEST_METRICS))
    params = load_params()
    out.mkdir(parents=True, exist_ok=True)
    new = not table.is_file()
    with table.open("a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(EXPLORED_COLUMNS)
        changed = " ".join(f"{key}={text(value)}" for key, value in args.extra) or "(the recipe)"
        scores = [cv["accuracy_mean"], cv["accuracy_std"]]
        writer.writerow([changed, params.epochs, params.model.width, *scores, wall, about["cpu"]])
    print(
        f"recipe: {changed}: CV {cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f}, {wall:.0f} s: {table}"
    )
    if args.extra:
        return
    shutil.copyfile(PARAMS_FILE, out / "params.yaml")
    record = {
        "cv": cv,
        "test": test,
        "wall_seconds": wall,
        "command": command(args.recipe, dict(args.extra)),
    }
    write_json(out / "metrics.json", {**record, "machine": about})
    subprocess.run(
        [sys.executable, "-m", "digits.reporting.review", args.base, "--out", str(out / "review")], check=True
    )
    scores = f"CV {cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f}, test {test['accuracy']:.2f}"
    print(f"recipe {args.recipe}: {scores}, ensemble {test['ensemble_accuracy']:.2f}, {wall:.0f} s: {out}")


if __name__ == "__main__":
    main()
