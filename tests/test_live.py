"""Watching train while it runs (digits.training.live): the growing CV files, the progress line, Studio."""

import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from conftest import project_env, run, snapshot, stages_run

from digits.core.layout import CV_METRICS, HISTORY, SCORES
from digits.training.cv import final_task, fold_tasks
from digits.training.fit import Epoch
from digits.training.live import LOG_EVERY, LiveRun, Progress, Studio, duration

SAMPLE = {"source": "sample", "images": 60}  # what the tasks below train on
LINE = re.compile(
    r"^train: (\d+)/(\d+) fits done(?:, epoch (\d+)/(\d+))?, ([\dhmins ]+) so far"
    r"(?:, about ([\dhmins ]+) left)?$"
)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def logs(accuracy: float) -> dict[str, float]:
    return {
        "loss": 1 - accuracy,
        "accuracy": accuracy,
        "val_loss": 1.1 - accuracy,
        "val_accuracy": accuracy - 0.1,
    }


def uniform_run(tasks, epochs: int, workers: int, seconds_per_image: float):
    """(time, event) of fits that run ``workers`` at a time, every epoch as long as its images say."""
    free = [1.0] * workers  # the workers start after a second of start-up
    events = []
    for task in tasks:
        worker = free.index(min(free))
        for epoch in range(1, epochs + 1):
            took = len(task.train_index) * seconds_per_image
            free[worker] += took
            events.append((free[worker], Epoch(task.name, epoch, logs(0.5 + epoch / 100), took)))
    return sorted(events, key=lambda pair: pair[0])


def seconds(text: str) -> float:
    units = {"h": 3600, "min": 60, "s": 1}
    return sum(int(n) * units[unit] for n, unit in re.findall(r"(\d+) (h|min|s)\b", text))


def test_durations_read_like_the_summary():
    assert [duration(s) for s in (4.4, 59.6, 110, 3725)] == ["4 s", "1 min 00 s", "1 min 50 s", "1 h 02 min"]


def test_the_eta_of_a_uniform_run_is_within_a_factor_of_two_of_the_time_left():
    tasks = [final_task(600, 1), *fold_tasks(600, 5, 1)]
    clock, log = Clock(), io.StringIO()
    progress = Progress(tasks, epochs=10, stream=log, clock=clock)
    run = uniform_run(tasks, epochs=10, workers=2, seconds_per_image=0.01)
    end = run[-1][0]
    for when, event in run[:-1]:
        clock.now = when
        progress.update(event)
        left = end - when
        assert left / 2 <= progress.eta(when) <= 2 * left, (when, progress.eta(when), left)
    # Each line as the issue shows it, with the ETA it printed
    lines = log.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert LINE.match(lines[0]).group(1, 2, 3, 4) == ("0", "6", "1", "10")
    assert [int(LINE.match(line).group(1)) for line in lines] == sorted(
        int(LINE.match(x).group(1)) for x in lines
    )
    assert seconds(LINE.match(lines[-1]).group(6)) > 0


def test_in_a_log_the_progress_is_one_line_per_fit_done_and_every_few_seconds_between():
    tasks = [final_task(100, 1), *fold_tasks(100, 2, 1)]
    clock, log = Clock(), io.StringIO()
    progress = Progress(tasks, epochs=30, stream=log, clock=clock)
    run = uniform_run(tasks, epochs=30, workers=1, seconds_per_image=0.01)  # 60 s, 90 epochs
    for when, event in run:
        clock.now = when
        progress.update(event)
    lines = log.getvalue().splitlines()
    # Not 90 lines, but one each LOG_EVERY seconds, and one per fit done.
    span = run[-1][0] - run[0][0]
    assert span / LOG_EVERY <= len(lines) <= span / LOG_EVERY + 4, lines
    done = [int(LINE.match(line).group(1)) for line in lines]
    assert done == sorted(done) and {1, 2, 3} <= set(done)
    assert "\r" not in log.getvalue()


def test_on_a_terminal_the_progress_line_updates_in_place():
    tasks = [final_task(100, 1)]
    clock, terminal = Clock(), Terminal()
    progress = Progress(tasks, epochs=3, stream=terminal, clock=clock)
    for epoch in (1, 2, 3):
        clock.now = epoch
        progress.update(Epoch("final", epoch, logs(0.9), 1.0))
    progress.close()
    text = terminal.getvalue()
    assert text.count("\r\x1b[K") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert text.rsplit("\r\x1b[K", 1)[1] == "train: 1/1 fits done, 3 s so far\n"


def feed(live: LiveRun, fit: str, epochs: int) -> None:
    for epoch in range(1, epochs + 1):
        live(Epoch(fit, epoch, logs(0.5 + epoch / 100 + int(fit[5]) / 1000), 0.1))


def test_the_cv_files_grow_with_the_epochs_and_say_partial_until_every_fold_is_done(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tasks = [final_task(90, 1), *fold_tasks(90, 3, 1)]
    with LiveRun(tasks, epochs=2, data={"source": "sample", "images": 90}, stream=io.StringIO()) as live:
        live(Epoch("final", 1, {"loss": 0.5, "accuracy": 0.8}, 0.1))  # no validation: progress only
        assert not HISTORY.exists()
        live(Epoch("fold 2/3", 1, logs(0.6), 0.1))  # fold 2 reports before fold 1
        history = pd.read_csv(HISTORY)
        assert history[["fold", "epoch"]].values.tolist() == [[2, 1]]
        assert history.loc[0, "val_accuracy_pct"] == pytest.approx(50.0)
        assert not CV_METRICS.exists() and not SCORES.exists()  # no fold done yet
        live(Epoch("fold 2/3", 2, logs(0.7), 0.1))
        live(Epoch("fold 1/3", 1, logs(0.65), 0.1))
        assert pd.read_csv(HISTORY)[["fold", "epoch"]].values.tolist() == [[1, 1], [2, 1], [2, 2]]
        metrics = json.loads(CV_METRICS.read_text())
        assert metrics["partial"] is True and metrics["folds_done"] == 1
        assert metrics["fold_accuracy"] == {"fold_2": pytest.approx(60.0)}
        assert pd.read_csv(SCORES).values.tolist() == [[2, pytest.approx(60.0), "90 MNIST sample images"]]
        live(Epoch("fold 1/3", 2, logs(0.75), 0.1))
        feed(live, "fold 3/3", 2)
        metrics = json.loads(CV_METRICS.read_text())
        assert metrics["partial"] is False and metrics["folds_done"] == 3
        assert sorted(metrics["fold_accuracy"]) == ["fold_1", "fold_2", "fold_3"]
        assert len(pd.read_csv(HISTORY)) == 3 * 2
        assert list(tmp_path.rglob(".*.tmp*")) == []  # every write was whole, nothing left beside


def test_a_failed_run_leaves_no_partial_cv_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tasks = [final_task(60, 1), *fold_tasks(60, 2, 1)]
    with pytest.raises(KeyboardInterrupt), LiveRun(tasks, 1, SAMPLE, stream=io.StringIO()) as live:
        feed(live, "fold 1/2", 1)
        assert HISTORY.exists() and CV_METRICS.exists() and SCORES.exists()
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []  # nor the folders made for them


class StudioServer(ThreadingHTTPServer):
    """A stand-in for DVC Studio's api/live: keeps what it was sent."""

    def __init__(self):
        self.received: list[tuple[str, dict, dict]] = []
        super().__init__(("127.0.0.1", 0), self.Handler)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass


@pytest.fixture
def studio():
    server = StudioServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def in_an_experiment(tmp_path, monkeypatch):
    """This process as a stage of ``dvc exp run`` in a DVC project without a Studio config."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    monkeypatch.setenv("DVC_EXP_NAME", "quick-pony")
    for name in ("DVC_STUDIO_TOKEN", "STUDIO_TOKEN", "DVC_STUDIO_URL", "DVC_STUDIO_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DVC_STUDIO_REPO_URL", "https://example.com/digits-dvc.git")


def test_without_a_studio_token_nothing_is_sent(in_an_experiment, studio, monkeypatch):
    monkeypatch.setenv("DVC_STUDIO_URL", f"http://127.0.0.1:{studio.server_port}")
    assert Studio.from_environment() is None
    tasks = [final_task(60, 1), *fold_tasks(60, 2, 1)]
    with LiveRun(tasks, 1, SAMPLE, stream=io.StringIO()) as live:
        feed(live, "fold 1/2", 1)
        feed(live, "fold 2/2", 1)
    assert studio.received == []


def test_with_a_studio_token_each_epoch_goes_to_studio_as_dvclive_sends_it(
    in_an_experiment, studio, monkeypatch
):
    monkeypatch.setenv("DVC_STUDIO_URL", f"http://127.0.0.1:{studio.server_port}")
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "secret")
    tasks = [final_task(60, 1), *fold_tasks(60, 2, 1)]
    with LiveRun(tasks, 2, SAMPLE, stream=io.StringIO()) as live:
        feed(live, "fold 1/2", 2)
    # The fold's second epoch, its first score: as dvc_studio_client sends it, metrics then plots.
    assert [(path, headers["Authorization"]) for path, headers, _ in studio.received] == [
        ("/api/live", "token secret")
    ] * 2
    metrics, plots = (body for _, _, body in studio.received)
    for body in (metrics, plots):
        assert body["type"] == "data" and body["client"] == "dvclive" and body["step"] > 0
        assert body["baseline_sha"] == "a" * 40 and body["name"] == "quick-pony"
    assert metrics["metrics"]["metrics/cv.json"]["data"]["partial"] is True
    last = pd.read_csv(HISTORY).iloc[-1].to_dict()
    assert plots["plots"]["plots/cv/history.csv"]["data"] == [pytest.approx(last)]


def test_outside_dvc_exp_run_there_is_no_studio(monkeypatch):
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "secret")
    assert Studio.from_environment() is None


RESULTS = ("metrics", "plots", "models")


def watch(project: Path, dvc: subprocess.Popen) -> list[tuple[int, bool | None]]:
    """Until ``dvc`` ends: each new state of the CV files, (rows of history.csv, cv.json's "partial")."""
    seen: list[tuple[int, bool | None]] = []
    while dvc.poll() is None:
        try:
            rows = len((project / HISTORY).read_text().splitlines()) - 1
            partial = json.loads((project / CV_METRICS).read_text()).get("partial")
        except (FileNotFoundError, json.JSONDecodeError, ValueError):
            rows, partial = -1, None
        if not seen or seen[-1] != (rows, partial):
            seen.append((rows, partial))
        time.sleep(0.02)
    return seen


def start(project: Path, *args: str) -> subprocess.Popen:
    # Its own process group, as a shell gives a job: Ctrl-C reaches dvc and its stages.
    return subprocess.Popen(
        ["dvc", "exp", "run", *args],
        cwd=project,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.timeout(600)
def test_while_train_runs_the_cv_files_grow_epoch_by_epoch(project):
    dvc = start(project, "-S", "epochs=6")
    seen = watch(project, dvc)
    out = dvc.stdout.read()
    assert dvc.returncode == 0, out
    # 2 folds x 6 epochs: rows came in as the epochs ended, and cv.json said partial meanwhile
    partial_rows = [rows for rows, _ in seen if 0 < rows < 12]
    assert len(set(partial_rows)) >= 3, seen
    assert (12, None) == seen[-1]  # the final files: every epoch, and no "partial" any more
    assert any(partial is True for _, partial in seen), seen
    assert json.loads((project / CV_METRICS).read_text()).keys() == {
        "accuracy_mean",
        "accuracy_std",
        "fold_accuracy",
        "data",
    }
    lines = [line for line in out.splitlines() if line.startswith("train: ") and "fits done" in line]
    assert lines and all(LINE.match(line) for line in lines), out
    assert lines[-1].startswith("train: 3/3 fits done")


def epochs_in(history: Path) -> int:
    try:
        return int(pd.read_csv(history)["epoch"].max())
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.timeout(600)
def test_an_interrupted_run_leaves_no_partial_result_and_the_next_run_is_clean(project):
    before = snapshot(project, *RESULTS)
    dvc = start(project, "-S", "epochs=40")
    while epochs_in(project / HISTORY) < 2:  # the last good run had 1
        assert dvc.poll() is None, dvc.stdout.read()
        time.sleep(0.05)
    os.killpg(dvc.pid, signal.SIGINT)  # Ctrl-C
    out = dvc.communicate(timeout=120)[0]
    assert dvc.returncode != 0
    assert "train: interrupted; its outputs are back as dvc.lock records them" in out
    assert snapshot(project, *RESULTS) == before  # the last good results, not the partial ones
    assert list(project.rglob(".*.tmp*")) == []
    # The workspace is the last good run's: the next run finds nothing to do but validate.
    again = run(["dvc", "exp", "run", "-S", "epochs=1"], project)
    assert stages_run(again.stdout) == ["validate"], again.stdout
    assert snapshot(project, *RESULTS) == before
