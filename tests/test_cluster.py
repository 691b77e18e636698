"""The fits on a real Dask cluster: `dask scheduler` and `dask worker` processes started here,
in a folder and an environment where the project's code is not importable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import assert_same_fits, make_params, project_env

import digits.training.parallel
from digits.core.errors import ParamsError, PipelineError
from digits.data.prepared import prepare, stratified_subset
from digits.data.sources import from_sample
from digits.training.cv import final_task, fold_tasks
from digits.training.parallel import (
    PACKAGE,
    check_reports,
    connect,
    pack_code,
    package_versions,
    prepare_cluster,
    run_tasks,
)

BIN = Path(sys.executable).parent


# This venv has the project installed (editable); a cluster machine has only the requirements.
HIDE_PROJECT = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""


def cluster_env(folder: Path) -> dict[str, str]:
    """This venv's programs without the project's own code, dask's scratch space in ``folder``."""
    hide = folder / "hide-project"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(HIDE_PROJECT)
    env = dict(project_env(), PYTHONPATH=str(hide), DASK_TEMPORARY_DIRECTORY=str(folder))
    return env


@contextmanager
def dask_cluster(folder: Path, workers: int) -> Iterator[str]:
    """A real scheduler on 127.0.0.1 (a free port) and ``workers`` one-thread workers; its address.

    Every process is killed on the way out, whatever happened.
    """
    env = cluster_env(folder)
    processes: list[subprocess.Popen] = []

    def start(*args: str) -> None:
        with open(folder / f"{len(processes)}-{args[0]}.log", "w") as log:
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), *args, "--no-dashboard"],
                    cwd=folder,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: the nanny's worker goes with it
                )
            )

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", "scheduler.json")
        deadline = time.monotonic() + 30
        while not (folder / "scheduler.json").is_file():
            assert processes[0].poll() is None, (folder / "0-scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start within 30 s"
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written in one go, but let it land
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        for _ in range(workers):
            start("worker", address, "--nthreads", "1")
        if workers:
            with connect(address) as client:
                client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)  # the whole group: nanny, worker, resource tracker
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("cluster")
    # The point of these tests: there, the project's code cannot be imported.
    imported = subprocess.run([sys.executable, "-c", "import digits"], cwd=folder, env=cluster_env(folder))
    assert imported.returncode != 0
    with dask_cluster(folder, workers=2) as address:
        yield address


@pytest.fixture(scope="module")
def tiny_train():
    """100 real digits, with 2 folds and the final fit as tasks."""
    x, y = prepare(stratified_subset(from_sample()["train"], 100, seed=1))
    return x, y, [final_task(len(x), 1), *fold_tasks(len(x), 2, 1)]


def test_fits_on_a_real_cluster_equal_local_ones(cluster, tiny_train, capsys, tmp_path):
    x, y, tasks = tiny_train
    epochs = []
    params = make_params(epochs=1, cv__backend="dask", cv__scheduler=cluster)
    on_cluster = run_tasks(tasks, x, y, params, report=epochs.append)
    local = run_tasks(tasks, x, y, make_params(epochs=1, cv__n_jobs=1))
    assert [r.name for r in on_cluster] == ["final", "fold 1/2", "fold 2/2"]
    assert_same_fits(on_cluster, local, tmp_path)
    out = capsys.readouterr().out
    assert f"Dask cluster {cluster}: 2 worker(s) ready, code sent, versions match; running 3 fits" in out
    # Each epoch came back over the cluster (its workers share no files with the client).
    assert sorted(e.fit for e in epochs) == ["final", "fold 1/2", "fold 2/2"]
    for event in epochs:
        result = on_cluster[[t.name for t in tasks].index(event.fit)]
        assert event.logs == {key: values[0] for key, values in result.history.items()}


def test_workers_run_the_code_sent_by_this_run(cluster, tmp_path, monkeypatch):
    """Long-running workers that ran other code before import this run's, not the older one."""
    source = copy_package(tmp_path / "digits", mtime=1e9)
    with open(source / "training" / "fit.py", "a") as f:
        f.write("EDITED = True\n")

    def edited() -> bool:
        return sys.modules["digits.training.fit"].__dict__.get("EDITED", False)

    def run_and_probe() -> dict:
        with connect(cluster) as client:
            prepare_cluster(client, cluster)
            return client.run(edited) | {"scheduler": client.run_on_scheduler(edited)}

    monkeypatch.setattr(digits.training.parallel, "PACKAGE", source)
    assert set(run_and_probe().values()) == {True}
    monkeypatch.undo()
    assert set(run_and_probe().values()) == {False}


def test_other_versions_on_the_workers_stop_the_run(cluster, monkeypatch):
    here = package_versions() | {"keras": "0.1.0"}  # as if this machine had another Keras
    monkeypatch.setattr(digits.training.parallel, "package_versions", lambda: here)
    with connect(cluster) as client:
        with pytest.raises(
            PipelineError, match=r"^worker tcp://127\.0\.0\.1:\d+ has keras 3\.[\d.]+, this machine"
        ):
            prepare_cluster(client, cluster)


def test_fits_past_their_deadline_fail(cluster, tiny_train, monkeypatch):
    x, y, tasks = tiny_train
    monkeypatch.setattr(digits.training.parallel, "FITS_BASE_TIMEOUT", 0.0)
    monkeypatch.setattr(digits.training.parallel, "FIT_SECONDS_PER_EPOCH_PER_10K", 0.01)
    params = make_params(epochs=1, cv__backend="dask", cv__scheduler=cluster)
    with pytest.raises(
        PipelineError, match=r"the fits did not finish within 0 s on tcp://.* \(0 of 3 done\)"
    ):
        run_tasks(tasks, x, y, params)


def test_a_cluster_without_workers_fails_fast(tmp_path, tiny_train, monkeypatch):
    x, y, tasks = tiny_train
    monkeypatch.setattr(digits.training.parallel, "WORKERS_TIMEOUT", 2.0)
    with dask_cluster(tmp_path, workers=0) as address:
        start = time.monotonic()
        params = make_params(cv__backend="dask", cv__scheduler=address)
        with pytest.raises(PipelineError) as error:
            run_tasks(tasks, x, y, params)
        assert time.monotonic() - start < 10
    assert str(error.value) == (
        f"no workers at {address} within 2 s; start them with: dask worker {address} --nthreads 1"
    )


def test_an_unreachable_scheduler_fails_fast(tiny_train, monkeypatch):
    import socket

    x, y, tasks = tiny_train
    monkeypatch.setattr(digits.training.parallel, "CONNECT_TIMEOUT", 3.0)  # 10 s by default
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    start = time.monotonic()
    with pytest.raises(PipelineError) as error:
        run_tasks(tasks, x, y, make_params(cv__backend="dask", cv__scheduler=address))
    assert time.monotonic() - start < 3 + 5
    assert str(error.value) == (
        f"cannot reach the Dask scheduler at {address} within 3 s; "
        "start it (dask scheduler) or fix cv.scheduler / DASK_SCHEDULER_ADDRESS"
    )


def test_a_malformed_address_is_a_params_error(tiny_train, monkeypatch):
    x, y, tasks = tiny_train
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "localhost")  # params.yaml's cv.scheduler is checked before
    with pytest.raises(ParamsError, match="'localhost' is not a Dask address"):
        run_tasks(tasks, x, y, make_params(cv__backend="dask"))


def test_dask_without_a_scheduler_is_a_clear_error(tiny_train, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    x, y, tasks = tiny_train
    with pytest.raises(ParamsError, match="cv.scheduler is null and DASK_SCHEDULER_ADDRESS is unset"):
        run_tasks(tasks, x, y, make_params(cv__backend="dask"))


HERE = {
    "python": "3.11",
    "tensorflow": "2.21.0",
    "keras": "3.15.1",
    "numpy": "2.3.0",
    "pydantic": "2.14.4",
    "distributed": "2026.8.0",
}
ARCHIVE = "digits-0123456789ab.zip"


def report(
    code: str = f"/scratch/{ARCHIVE}/digits/training/fit.py", error: str | None = None, **versions
) -> dict:
    return {"versions": HERE | versions, "code": code, "error": error}


def test_matching_nodes_pass_the_check():
    check_reports({"scheduler": report(), "tcp://w:1": report(), "tcp://w:2": report()}, ARCHIVE, HERE)


@pytest.mark.parametrize(
    ("reports", "message"),
    [
        (
            {"tcp://w:1": report(keras="3.14.0")},
            "worker tcp://w:1 has keras 3.14.0, this machine has 3.15.1; "
            "install the same pinned requirements.lock on both",
        ),
        (
            {"tcp://w:1": report(tensorflow=None)},
            "worker tcp://w:1 has tensorflow (not installed), this machine",
        ),
        ({"tcp://w:1": report(python="3.12")}, "worker tcp://w:1 has python 3.12, this machine has 3.11"),
        ({"scheduler": report(distributed="2025.1.0")}, "the scheduler has distributed 2025.1.0"),
        (
            {"tcp://w:1": report(code=None, error="ModuleNotFoundError: No module named 'yaml'")},
            "worker tcp://w:1 cannot import the project's code (ModuleNotFoundError: No module named 'yaml')",
        ),
        (
            {"tcp://w:1": ModuleNotFoundError("No module named 'digits'")},
            "worker tcp://w:1 cannot run the project's code (ModuleNotFoundError: No module named 'digits')",
        ),
        (
            {"tcp://w:1": report(code="/opt/old/digits/training/fit.py")},
            "worker tcp://w:1 imports the project's code from /opt/old/digits/training/fit.py, "
            "not the copy sent",
        ),
    ],
)
def test_a_node_unlike_this_machine_is_named_in_one_line(reports, message):
    with pytest.raises(PipelineError) as error:
        check_reports({"scheduler": report(), **reports}, ARCHIVE, HERE)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_the_scheduler_needs_no_tensorflow():
    check_reports({"scheduler": report(tensorflow=None, keras=None), "tcp://w:1": report()}, ARCHIVE, HERE)


def copy_package(dest: Path, mtime: float) -> Path:
    """A copy of the package's sources whose files all carry the time ``mtime``."""
    for path in PACKAGE.rglob("*.py"):
        copy = dest / path.relative_to(PACKAGE)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
        os.utime(copy, (mtime, mtime))
    return dest


def test_the_code_archive_is_the_same_bytes_for_the_same_sources(tmp_path):
    # File times years apart (zip times have a 2-second resolution): an archive that
    # recorded them would differ.
    first = pack_code(copy_package(tmp_path / "a" / "digits", mtime=1e9), tmp_path / "a")
    second = pack_code(copy_package(tmp_path / "b" / "digits", mtime=1.7e9), tmp_path / "b")
    assert first.name == second.name and first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert {"digits/__init__.py", "digits/training/parallel.py", "digits/training/fit.py"} <= set(names)
    assert all(name.startswith("digits/") and name.endswith(".py") for name in names)
    with open(tmp_path / "b" / "digits" / "training" / "model.py", "a") as f:
        f.write("# edited\n")
    assert pack_code(tmp_path / "b" / "digits", tmp_path).name != first.name
