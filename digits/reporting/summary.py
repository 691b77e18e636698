"""What ``make run`` ends with: the results in a few lines, where to look, what to try next.

python -m digits.reporting.summary [--since UNIX_TIME] [--plots dvc_plots/index.html]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from digits.core import cli
from digits.core.errors import RESTORE, DataError
from digits.core.layout import CV_METRICS, TEST_METRICS
from digits.core.lock import locked_params
from digits.core.params import load_params

# The experiments table in 160 columns: CV, test and ensemble accuracy and the params that
# differ (dropped: per-fold accuracies, and the hashes of deps such as the models).
EXP_SHOW = "dvc exp show --only-changed --drop 'fold_|.*/'"

NEXT = (
    ("dvc exp run -S epochs=20", "an experiment: only train, evaluate and plot re-run"),
    (EXP_SHOW, "the experiments: their results and the params that differ"),
    ("dvc plots diff main", "what a change did to the curves and the confusion matrix"),
    (".venv/bin/digits-predict docs/seven.png", "classify your own images"),
)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(f"{path}: missing or unreadable; {RESTORE}") from None


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


def trained_with() -> tuple[str, int, int]:
    """The model, epochs and folds of the run that produced the metrics: dvc.lock's, not params.yaml's."""
    locked = locked_params("train")
    if not locked:  # trained outside DVC: params.yaml is all there is
        params = load_params()
        return params.model.arch, params.epochs, params.cv.folds
    return locked["model"]["arch"], locked["epochs"], locked["cv.folds"]


def summary(seconds: float | None, plots: Path | None) -> str:
    """The summary's text, from the committed metrics files and params."""
    cv, test = _read(CV_METRICS), _read(TEST_METRICS)
    arch, epochs, folds = trained_with()
    data = cv["data"]
    rows = [
        f"{folds}-fold CV  {cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f} %",
        f"test       {test['accuracy']:.2f} %  (final model, {test['data']['images']:,} held-out images)",
        f"ensemble   {test['ensemble_accuracy']:.2f} %  ({folds} fold models)",
    ]
    if seconds is not None:
        rows.append(f"wall time  {minutes(seconds)}")
    if plots is not None:
        rows.append(f"plots      {plots}  (offline; open it in a browser)")
    width = max(len(command) for command, _ in NEXT)
    lines = [
        f"digits-dvc: {arch} CNN, {epochs} epoch{'s' * (epochs != 1)}, "
        f"on {data['images']:,} "
        f"{'full MNIST' if data['source'] == 'mnist' else 'SAMPLE'} training images",
        *(f"  {row}" for row in rows),
        "next (after `source .venv/bin/activate`):",
        *(f"  {command:<{width}}  {what}" for command, what in NEXT),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m digits.reporting.summary", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--since", type=float, help="start time (seconds since the epoch) for the wall time")
    parser.add_argument("--plots", type=Path, help="the plots page to point at")
    args = parser.parse_args(argv)
    print(summary(time.time() - args.since if args.since else None, args.plots))


def run() -> None:
    """The ``digits-summary`` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
