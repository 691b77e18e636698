"""Side-by-side benchmark: the plain tutorial script vs the pipeline, same data and params.

    make bench                  # full MNIST, full protocol (about 9 minutes here, idle)
    make bench ARGS=--quick     # 6,000 training images, 2 epochs (about 2 minutes)

Needs the full MNIST in MNIST_DIR (default: ../shared/data/mnist). The pipeline is timed
as a new user meets it: a fresh clone of this repository's HEAD, no virtual environment,
then ``make setup`` and ``make run``: their sum is the time to first result (set-up,
pipeline, plots page and summary). Reports wall time, peak memory (PSS of all processes of
the run, summed), CV mean/std, test accuracy and the ratio pipeline/plain, as a Markdown
table; ``--out`` also saves it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def measure(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``args``; return (wall seconds, peak memory in GB of the process and its children).

    Memory is the sum of PSS (resident memory, shared pages split between the processes
    sharing them), so shared libraries and memory-mapped data are not counted twice.
    """
    start = time.perf_counter()
    process = psutil.Popen(args, cwd=cwd, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.25):
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_full_info().pss for p in tree if p.is_running()))
            except psutil.Error:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if process.wait() != 0:
        sys.exit(f"bench: {' '.join(args)} failed")
    done.set()
    sampler.join()
    return time.perf_counter() - start, peak / 1e9


def run_plain(limit: int | None, epochs: int, env: dict[str, str], tmp: Path) -> dict:
    out = tmp / "plain.json"
    args = [sys.executable, str(ROOT / "bench/tutorial.py"), "--epochs", str(epochs), "--out", str(out)]
    if limit:
        args += ["--limit", str(limit)]
    wall, rss = measure(args, ROOT, env)
    return {"wall_s": wall, "peak_memory_gb": rss, **json.loads(out.read_text())}


def run_pipeline(limit: int | None, epochs: int, env: dict[str, str], tmp: Path) -> dict:
    repo = tmp / "pipeline"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # The protocol of bench/tutorial.py, whatever params.yaml says at HEAD.
    params.update(seed=1, epochs=epochs, batch_size=32)
    params["data"].update(source="mnist", limit=limit)
    params["cv"]["folds"] = 5
    params["model"]["arch"] = "baseline"
    params["optimizer"].update(learning_rate=0.01, momentum=0.9)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The clone's own environment, not this one's: make creates it.
    clean = {key: value for key, value in env.items() if key != "VIRTUAL_ENV"}
    clean["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))
    setup, _ = measure(["make", "setup"], repo, clean)
    wall, rss = measure(["make", "run"], repo, clean)
    cv = json.loads((repo / "metrics/cv.json").read_text())
    test = json.loads((repo / "metrics/test.json").read_text())
    return {
        "setup_s": setup,
        "wall_s": wall,
        "first_result_s": setup + wall,
        "peak_memory_gb": rss,
        "cv_mean": cv["accuracy_mean"],
        "cv_std": cv["accuracy_std"],
        "test_accuracy": test["accuracy"],
        "ensemble_accuracy": test["ensemble_accuracy"],
    }


def table(plain: dict, ours: dict, title: str) -> str:
    rows = [
        ("wall time: script / `make run` (s)", "wall_s", "{:.0f}"),
        ("peak memory (GB, summed PSS)", "peak_memory_gb", "{:.2f}"),
        ("CV mean (%)", "cv_mean", "{:.2f}"),
        ("CV std", "cv_std", "{:.2f}"),
        ("test accuracy (%)", "test_accuracy", "{:.2f}"),
    ]
    lines = [
        f"**{title}**",
        "",
        "| | plain script | pipeline | pipeline / plain |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key, fmt in rows:
        ratio = f"{ours[key] / plain[key]:.2f}x" if key in ("wall_s", "peak_memory_gb") else ""
        lines.append(f"| {label} | {fmt.format(plain[key])} | {fmt.format(ours[key])} | {ratio} |")
    lines.append(f"| fold-ensemble test accuracy (%) | | {ours['ensemble_accuracy']:.2f} | |")
    lines.append(f"| set-up: fresh virtual environment (s) | | {ours['setup_s']:.0f} | |")
    lines.append(f"| **time to first result: clone → results (s)** | | **{ours['first_result_s']:.0f}** | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="6,000 training images, 2 epochs")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = parser.parse_args()
    mnist_dir = Path(os.environ.get("MNIST_DIR", DEFAULT_MNIST)).resolve()
    if not (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"bench: no MNIST files in {mnist_dir}; set MNIST_DIR to the four canonical .gz files")
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    limit, epochs = (6000, 2) if args.quick else (None, 10)

    with tempfile.TemporaryDirectory(prefix="digits-bench-") as tmp:
        print("bench: plain tutorial script ...", flush=True)
        plain = run_plain(limit, epochs, env, Path(tmp))
        print("bench: pipeline, fresh clone: make setup, make run ...", flush=True)
        ours = run_pipeline(limit, epochs, env, Path(tmp))
    size = f"{limit:,} training images" if limit else "full MNIST (60,000 + 10,000)"
    title = f"{size}, 5-fold CV + final fit, {epochs} epochs, batch 32, {os.cpu_count()} cores"
    report = table(plain, ours, title)
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
