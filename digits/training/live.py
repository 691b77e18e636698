"""Watching ``train`` while it runs: the CV files as they grow, a progress line, DVC Studio.

Each fit reports the end of every epoch as an :class:`~digits.training.fit.Epoch`, through a
channel that works where the fit runs (:mod:`digits.training.parallel`: a queue from this machine's worker
processes, the Dask event log from a cluster's workers, which share no files with this
machine). Here, one :class:`LiveRun` takes them one at a time and after each:

* rewrites ``plots/cv/history.csv``, ``plots/cv/scores.csv`` and ``metrics/cv.json``
  atomically with what the folds have so far; ``cv.json`` says ``"partial": true`` until
  every fold is done. ``dvc plots show``, ``dvc exp show`` and the VS Code DVC extension
  read these files, so they show the run as it goes;
* updates the progress line: ``train: 3/6 fits done, epoch 7/10, 1 min 50 s so far, about
  1 min 10 s left``, in place on a terminal, else one line per fit done and at most one
  every :data:`LOG_EVERY` seconds between;
* with a DVC Studio token, inside ``dvc exp run``, posts the new metrics and rows to Studio
  as dvclive does (DVC itself posts the start and the end of the experiment).

The stage writes the final files itself when the fits are done, byte for byte what a run
without watching gives. If it fails, :meth:`LiveRun.__exit__` removes the partial files and
:func:`digits.core.cli.run` puts the last good ones back.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from digits.core.files import atomic_file, write_json
from digits.core.layout import CV_METRICS, HISTORY, SCORES
from digits.training.cv import cv_metrics, history_table, scores_table
from digits.training.fit import Epoch, FitTask

LOG_EVERY = 10.0  # seconds between progress lines in a log (not a terminal)


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``1 min 50 s``, ``45 s``."""
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


class Progress:
    """Fits done, the epoch reached and an ETA from the measured epoch times.

    The ETA counts work as images x epochs (the final fit has more images than a fold) and
    measures the rate from the start of the first epoch, so the workers' start-up is not in it.
    """

    def __init__(
        self, tasks: list[FitTask], epochs: int, stream: IO[str] | None = None, clock=time.monotonic
    ):
        self.size = {task.name: len(task.train_index) for task in tasks}
        self.epochs = epochs
        self.total = sum(self.size.values()) * epochs
        self.stream = stream or sys.stdout
        self.clock = clock
        self.in_place = self.stream.isatty()
        self.start = clock()
        self.first: float | None = None  # when the first epoch began
        self.done = 0
        self.reached: dict[str, int] = {}
        self.printed: tuple[float, int] | None = None  # (when, fits done) of the last line in a log

    def update(self, event: Epoch) -> None:
        now = self.clock()
        if self.first is None:
            self.first = now - event.seconds
        self.done += self.size[event.fit]
        self.reached[event.fit] = event.epoch
        if self.in_place:
            self.stream.write(f"\r\x1b[K{self.line(now)}")
        elif self.printed is None or self.fits_done != self.printed[1] or now - self.printed[0] >= LOG_EVERY:
            self.stream.write(f"{self.line(now)}\n")
            self.printed = (now, self.fits_done)
        self.stream.flush()

    def eta(self, now: float) -> float:
        """Seconds left at the rate measured so far."""
        return (self.total - self.done) * (now - self.first) / self.done

    @property
    def fits_done(self) -> int:
        return sum(epoch == self.epochs for epoch in self.reached.values())

    def line(self, now: float) -> str:
        running = [epoch for epoch in self.reached.values() if epoch < self.epochs]
        epoch = f", epoch {min(running)}/{self.epochs}" if running else ""
        left = f", about {duration(self.eta(now))} left" if self.done < self.total else ""
        so_far = duration(now - self.start)
        return f"train: {self.fits_done}/{len(self.size)} fits done{epoch}, {so_far} so far{left}"

    def close(self) -> None:
        if self.in_place and self.done:
            self.stream.write("\n")
            self.stream.flush()


class LiveRun:
    """The receiver of every :class:`~digits.training.fit.Epoch` of a run: see the module's docstring."""

    def __init__(
        self, tasks: list[FitTask], epochs: int, data: dict[str, Any], stream: IO[str] | None = None
    ):
        # Fold k is the k-th task with a validation part; the final fit has none.
        self.fold = {task.name: k for k, task in enumerate((t for t in tasks if t.val_index is not None), 1)}
        self.epochs = epochs
        self.data = data
        self.history: dict[int, dict[str, list[float]]] = {}
        self.progress = Progress(tasks, epochs, stream)
        self.studio = Studio.from_environment()
        self.written: set[Path] = set()
        # The folders the files will need that are not there yet: a failure removes them too.
        folders = {folder for path in (HISTORY, SCORES, CV_METRICS) for folder in path.parents}
        self.new_folders = sorted((f for f in folders if f != Path(".") and not f.exists()), reverse=True)

    def __call__(self, event: Epoch) -> None:
        self.progress.update(event)
        fold = self.fold.get(event.fit)
        if fold is None:
            return  # the final fit: no validation, so in the progress line only
        for key, value in event.logs.items():
            self.history.setdefault(fold, {}).setdefault(key, []).append(float(value))
        histories = dict(sorted(self.history.items()))
        table = history_table(histories, self.data)
        self._write(HISTORY, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6f"))
        done = {k: h["val_accuracy"][-1] for k, h in histories.items() if len(h["loss"]) == self.epochs}
        if not done:
            return
        metrics = cv_metrics(done, self.data)
        metrics |= {"partial": len(done) < len(self.fold), "folds_done": len(done)}
        self._write(SCORES, lambda tmp: scores_table(metrics).to_csv(tmp, index=False))
        write_json(CV_METRICS, metrics)
        self.written.add(CV_METRICS)
        if self.studio:
            rows = table[table["fold"] == fold].tail(1)
            self.studio.post(metrics, {HISTORY: rows.to_dict("records")}, step=self.progress.done)

    def _write(self, path: Path, write) -> None:
        with atomic_file(path) as tmp:
            write(tmp)
        self.written.add(path)

    def __enter__(self) -> LiveRun:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.progress.close()
        if error is not None:  # never leave partial results as if they were final
            for path in self.written:
                path.unlink(missing_ok=True)
            for folder in self.new_folders:  # the deepest first
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


@dataclass(frozen=True)
class Studio:
    """Live updates to DVC Studio of the ``dvc exp run`` this stage is part of."""

    baseline: str
    name: str
    config: dict[str, Any]

    @classmethod
    def from_environment(cls) -> Studio | None:
        """Only inside ``dvc exp run``, with a token: ``DVC_STUDIO_TOKEN`` or ``dvc config studio.token``."""
        from dvc.env import DVC_EXP_BASELINE_REV, DVC_EXP_NAME
        from dvc_studio_client.config import get_studio_config

        baseline, name = os.environ.get(DVC_EXP_BASELINE_REV), os.environ.get(DVC_EXP_NAME)
        if not (baseline and name):
            return None
        config = get_studio_config(dvc_studio_config=_dvc_studio_config())
        return cls(baseline, name, config) if config.get("token") else None

    def post(self, metrics: dict[str, Any], plots: dict[Path, list[dict]], step: int) -> None:
        from dvc_studio_client.post_live_metrics import post_live_metrics

        post_live_metrics(
            "data",
            self.baseline,
            self.name,
            "dvclive",
            metrics={str(CV_METRICS): {"data": metrics}},
            plots={str(path): {"data": rows} for path, rows in plots.items()},
            step=step,
            dvc_studio_config=self.config,
        )


def _dvc_studio_config() -> dict[str, Any]:
    from dvc.repo import Repo

    with Repo(".") as repo:
        return dict(repo.config.get("studio", {}))
