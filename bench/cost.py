"""How a run's time grows: the pipeline's fixed seconds and its seconds per image-epoch.

    python bench/cost.py                        # about 20 minutes here, idle
    python bench/cost.py --out results/cost.md

In a fresh clone with full MNIST (``MNIST_DIR``, default ../shared/data/mnist), the default
protocol (5-fold CV and the final fit, batch 32) runs on 10k, 30k and 60k training images for
2 epochs, and on 10k and 30k for 10. Each stage is timed on its own, as ``dvc repro
--single-item STAGE`` (DVC's start included), and so are ``dvc plots show`` and the summary.
``train`` is fitted as fixed seconds plus seconds per thousand image-epochs; an image-epoch is
one training image seen once, so a run has folds x images x epochs of them (k-1 folds'
share in each of k fits, and all of them in the final fit). The fit is then checked on the
default run, 60k images for 10 epochs, which it has not seen. Also timed, once each: the
first run's download (before the others), a ``dvc repro`` with nothing to do (DVC's own
fixed cost) and the start of TensorFlow in a process (paid by each training worker and by
evaluate).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
GRID = [(10_000, 2), (30_000, 2), (60_000, 2), (10_000, 10), (30_000, 10)]
CHECK = (60_000, 10)  # the default run: predicted from GRID, then measured
FOLDS = 5
STAGES = ("validate", "download", "preprocess", "train", "evaluate", "plot")
AFTER = {"plots page": ["dvc", "plots", "show", "--quiet", "--out", "dvc_plots"],
         "summary": ["python", "-m", "digits.reporting.summary"]}  # fmt: skip


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"cost: {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def set_run(repo: Path, images: int, epochs: int) -> None:
    """The default protocol on full MNIST, ``images`` of its training images, for ``epochs``."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["epochs"] = epochs
    params["data"].update(source="mnist", limit=None if images == 60_000 else images)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def time_run(repo: Path, images: int, epochs: int, env: dict[str, str]) -> dict[str, float]:
    set_run(repo, images, epochs)
    seconds = {stage: timed(["dvc", "repro", "--single-item", stage], repo, env) for stage in STAGES}
    seconds.update({name: timed(args, repo, env) for name, args in AFTER.items()})
    return seconds


def image_epochs(images: int, epochs: int) -> float:
    """Thousands of training image-epochs in the protocol: each image once per fold it trains in."""
    return FOLDS * images * epochs / 1000


def report(rows: list[tuple[int, int, dict]], once: dict[str, float]) -> str:
    columns = [*STAGES, *AFTER]
    lines = [
        "| images | epochs | " + " | ".join(columns) + " | total (s) |",
        "| ---: | ---: | " + " | ".join("---:" for _ in columns) + " | ---: |",
    ]
    for images, epochs, seconds in rows:
        cells = " | ".join(f"{seconds[c]:.1f}" for c in columns)
        lines.append(f"| {images:,} | {epochs} | {cells} | {sum(seconds.values()):.0f} |")
    fitted = [(i, e, s) for i, e, s in rows if (i, e) != CHECK]
    work = np.array([image_epochs(i, e) for i, e, _ in fitted])
    slope, fixed_train = np.polyfit(work, [s["train"] for *_, s in fitted], 1)
    # Everything but train's image-epochs: its fixed seconds and the other steps, the mean of
    # each over the runs (download has nothing to do: it ran before them).
    others = {c: float(np.mean([s[c] for *_, s in fitted])) for c in columns if c != "train"}
    fixed = fixed_train + sum(others.values())
    images, epochs = CHECK
    predicted = fixed + slope * image_epochs(images, epochs)
    measured = next(sum(s.values()) for i, e, s in rows if (i, e) == CHECK)
    lines += [
        "",
        f"- **train**: {fixed_train:.0f} s fixed + {slope * 1000:.2f} s per million image-epochs"
        f" ({1000 / slope:,.0f} image-epochs/s on {os.cpu_count()} cores);",
        f"- **fixed seconds of a whole run**: {fixed:.0f} s: train's {fixed_train:.0f} s, "
        + ", ".join(f"{name} {value:.1f} s" for name, value in others.items())
        + ";",
        f"- DVC with nothing to do: {once['dvc no-op']:.1f} s a command; TensorFlow's start in a"
        f" process: {once['tensorflow start']:.1f} s; validate and the download of a first run (a"
        f" copy from MNIST_DIR, and its checksums): {once['first download']:.1f} s;",
        f"- **predicted** for {images:,} images x {epochs} epochs: {fixed:.0f} + {slope:.4f} x"
        f" {image_epochs(images, epochs):,.0f} = {predicted:.0f} s; **measured**: {measured:.0f} s"
        f" ({(measured - predicted) / predicted:+.0%}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args()
    mnist_dir = Path(os.environ.get("MNIST_DIR", DEFAULT_MNIST)).resolve()
    if not (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"cost: no MNIST files in {mnist_dir}; set MNIST_DIR to the four canonical .gz files")
    with tempfile.TemporaryDirectory(prefix="digits-cost-") as tmp:
        repo = Path(tmp) / "pipeline"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
        env.update(MNIST_DIR=str(mnist_dir), TF_CPP_MIN_LOG_LEVEL="2")
        env["PATH"] = f"{repo / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"  # the clone's own venv
        subprocess.run(["make", "setup"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        set_run(repo, *GRID[0])
        once = {"first download": timed(["dvc", "repro", "download"], repo, env)}  # validate, download
        rows = []
        for images, epochs in [*GRID, CHECK]:
            print(f"cost: {images:,} images, {epochs} epochs ...", flush=True)
            rows.append((images, epochs, time_run(repo, images, epochs, env)))
        once["dvc no-op"] = timed(["dvc", "repro"], repo, env)
        once["tensorflow start"] = timed(["python", "-c", "import tensorflow"], repo, env)
    text = report(rows, once)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
