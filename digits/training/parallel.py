"""Where the fits run: local worker processes (joblib's loky), or a Dask cluster.

A cluster needs nothing of this project installed, only the pinned requirements.
Before any fit is submitted, :func:`run_on_cluster` waits for a worker, sends this
package to the scheduler and the workers (the scheduler unpickles the task graph,
so it needs the code too), and checks on each that the code imports and that
Python, TensorFlow, Keras, NumPy, pydantic and distributed are the versions used here.
Whatever fails is one :class:`~digits.core.errors.PipelineError` line naming the cause.

Every wait on the cluster has a deadline (the constants below, in seconds), so a
missing scheduler, a cluster without workers or lost workers end in an error, never a hang.

This module imports only the standard library at the top: the check runs it on
machines that may lack the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import math
import os
import sys
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digits.core.errors import ParamsError, PipelineError

if TYPE_CHECKING:
    import numpy as np
    from distributed import Client

    from digits.core.params import Params
    from digits.training.fit import Epoch, FitResult, FitTask

    Report = Callable[[Epoch], None]

CONNECT_TIMEOUT = 10.0  # reach the scheduler
WORKERS_TIMEOUT = 30.0  # at least one worker connected to it
SETUP_TIMEOUT = 120.0  # each set-up exchange: sending the code, the checks, sending the data
# Waiting for the fits. A fit here takes about 2 s per epoch per 10,000 images; allow 15 times
# that for each round of fits (one fit per worker at a time), plus 10 minutes.
FITS_BASE_TIMEOUT = 600.0
FIT_SECONDS_PER_EPOCH_PER_10K = 30.0
REPORT_POLL_SECONDS = 0.2  # how often the local workers' epoch reports are read

PACKAGE = Path(__file__).resolve().parents[1]  # the digits package: what is sent to the cluster
PLUGIN_NAME = "digits-code"
SCHEDULER = "scheduler"
# Packages whose versions must match: Python itself, and what each node uses (the scheduler
# unpickles the tasks: their arrays and params, not the model).
WORKER_PACKAGES = ("python", "tensorflow", "keras", "numpy", "pydantic", "distributed")
SCHEDULER_PACKAGES = ("python", "numpy", "pydantic", "distributed")


def run_tasks(
    tasks: list[FitTask], x: np.ndarray, y: np.ndarray, params: Params, report: Report | None = None
) -> list[FitResult]:
    """Run the fits in parallel; results come back in the order of ``tasks``.

    ``report`` gets every fit's :class:`~digits.training.fit.Epoch` here, one at a time, as
    the epochs end wherever the fits run; if it raises, the run stops with that error.
    """
    receiver = Receiver(report) if report else None
    try:
        if params.cv.backend == "dask":
            results = run_on_cluster(scheduler_address(params), tasks, x, y, params, receiver)
        else:
            results = run_locally(tasks, x, y, params, receiver)
    finally:
        error = receiver.close() if receiver else None
    if error:
        raise error
    return results


class Receiver:
    """Hands the epochs to ``report`` until :meth:`close`, which returns the first error it raised.

    It is called on another thread than the run's (a queue reader, Dask's event loop), where
    an error would only end that thread; and Dask may deliver an epoch after the fit's result,
    when the stage is writing the final files: nothing reaches ``report`` after :meth:`close`.
    """

    def __init__(self, report: Report):
        self.report = report
        self.error: Exception | None = None
        self.open = True
        self.lock = threading.Lock()

    def __call__(self, event: Epoch) -> None:
        with self.lock:
            if self.open and self.error is None:
                try:
                    self.report(event)
                except Exception as exc:
                    self.error = exc

    def close(self) -> Exception | None:
        with self.lock:
            self.open = False
        return self.error


class FileReport:
    """What a local worker reports through: a line of JSON per epoch, appended to a file of its
    own process in ``folder``, which this process reads as it grows (:func:`_local_reports`).

    Plain files and not a queue: a queue needs a server process, and the signals of a Ctrl-C
    or a ``kill`` of the stage's process group would reach it and end it mid-run.
    """

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, event: Epoch) -> None:
        with open(os.path.join(self.folder, f"{os.getpid()}.jsonl"), "a") as file:
            file.write(json.dumps(dataclasses.asdict(event)) + "\n")


class TopicReport:
    """What a Dask worker reports through: the cluster's event log, topic ``topic``."""

    def __init__(self, topic: str):
        self.topic = topic

    def __call__(self, event: Epoch) -> None:
        from distributed import get_worker

        get_worker().log_event(self.topic, dataclasses.asdict(event))


def _epoch(message: dict[str, Any]) -> Epoch:
    """An :class:`~digits.training.fit.Epoch` from its fields in ``message`` (Dask adds others)."""
    from digits.training.fit import Epoch

    return Epoch(**{field.name: message[field.name] for field in dataclasses.fields(Epoch)})


@contextmanager
def _local_reports(receiver: Receiver | None) -> Iterator[FileReport | None]:
    """A report for local workers, whose files a thread of this process hands to ``receiver``.

    Every epoch reaches ``receiver`` before this ends: a worker's report is written before its
    fit returns, and the files are read a last time after the fits.
    """
    if receiver is None:
        yield None
        return
    offsets: dict[Path, int] = {}

    def read_new_lines(folder: Path) -> None:
        for path in sorted(folder.glob("*.jsonl")):
            with open(path, "rb") as file:
                file.seek(offsets.get(path, 0))
                data = file.read()
            whole = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
            offsets[path] = offsets.get(path, 0) + len(whole)
            for line in whole.splitlines():
                receiver(_epoch(json.loads(line)))

    with tempfile.TemporaryDirectory(prefix="digits-epochs-") as folder:
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(REPORT_POLL_SECONDS):
                read_new_lines(Path(folder))

        reader = threading.Thread(target=follow, name="epochs", daemon=True)
        reader.start()
        try:
            yield FileReport(folder)
        finally:
            stop.set()
            reader.join()
        read_new_lines(Path(folder))


def run_locally(
    tasks: list[FitTask], x: np.ndarray, y: np.ndarray, params: Params, receiver: Receiver | None = None
) -> list[FitResult]:
    """``cv.n_jobs`` worker processes on this machine (null: one per core)."""
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    from digits.training.fit import fit

    n_jobs = min(params.cv.n_jobs or os.cpu_count() or 1, len(tasks))
    try:
        with _local_reports(receiver) as report:
            return Parallel(n_jobs=n_jobs, backend="loky")(
                delayed(fit)(task, x, y, params, report) for task in tasks
            )
    except TerminatedWorkerError:
        raise PipelineError(
            f"a training worker died (out of memory?) with cv.n_jobs={n_jobs}; "
            "lower cv.n_jobs or data.limit and run it again"
        ) from None


def scheduler_address(params: Params) -> str:
    """``cv.scheduler``, else ``$DASK_SCHEDULER_ADDRESS``."""
    from digits.core.params import check_environment

    check_environment(params)  # the validate stage's one-line error when there is neither
    return params.cv.scheduler or os.environ["DASK_SCHEDULER_ADDRESS"]


def run_on_cluster(
    address: str,
    tasks: list[FitTask],
    x: np.ndarray,
    y: np.ndarray,
    params: Params,
    receiver: Receiver | None = None,
) -> list[FitResult]:
    """Check the cluster at ``address`` can run the fits, then run them there."""
    with connect(address) as client:
        workers = prepare_cluster(client, address)
        print(
            f"Dask cluster {address}: {workers} worker(s) ready, code sent, versions match; "
            f"running {len(tasks)} fits",
            flush=True,
        )
        return _fit_on_cluster(client, address, tasks, x, y, params, workers, receiver)


def connect(address: str) -> Client:
    """A client of the scheduler at ``address``, or a one-line error within about :data:`CONNECT_TIMEOUT`."""
    from distributed import Client

    try:
        # A Client that failed to start stalls the interpreter's exit for 2 x its timeout:
        # try the address with a plain connection first.
        asyncio.run(_reach(address))
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except ValueError as exc:
        problem = ParamsError(
            f"cv.scheduler / DASK_SCHEDULER_ADDRESS: {address!r} is not a Dask address "
            f"({_first_line(exc)}); give one like tcp://host:8786"
        )
    except OSError:  # refused, unknown host, no answer: distributed retries them until the timeout
        problem = PipelineError(
            f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT:.0f} s; "
            "start it (dask scheduler) or fix cv.scheduler / DASK_SCHEDULER_ADDRESS"
        )
    except Exception as exc:  # something else listens there
        problem = PipelineError(
            f"{address} did not answer like a Dask scheduler ({type(exc).__name__}: {_first_line(exc)}); "
            "check the address and port"
        )
    raise problem  # outside the except blocks: the error does not keep the failed client alive


async def _reach(address: str) -> None:
    from distributed.comm import connect as open_comm

    comm = await open_comm(address, timeout=CONNECT_TIMEOUT)
    await comm.close()


def prepare_cluster(client: Client, address: str) -> int:
    """Wait for a worker, send the code, check every node; return the number of workers."""
    from distributed.diagnostics.plugin import SchedulerUploadFile, UploadFile

    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except TimeoutError:
        raise PipelineError(
            f"no workers at {address} within {WORKERS_TIMEOUT:.0f} s; start them with: "
            f"dask worker {address} --nthreads 1"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        archive = pack_code(PACKAGE, Path(tmp))
        # A fixed name: each run replaces the previous code, also for workers that join later.
        upload = [SchedulerUploadFile(str(archive)), UploadFile(str(archive))]
    for plugin in upload:
        _within(client, address, "sending the code", lambda p=plugin: client.register_plugin(p, PLUGIN_NAME))
    name = archive.name
    reports: dict[str, Any] = {
        SCHEDULER: _within(
            client, address, "checking the scheduler", lambda: client.run_on_scheduler(node_report, name)
        )
    }
    reports |= _within(
        client, address, "checking the workers", lambda: client.run(node_report, name, on_error="return")
    )
    check_reports(reports, name, package_versions())
    return len(reports) - 1


def pack_code(package: Path, folder: Path) -> Path:
    """Zip the sources of ``package`` into ``folder`` as ``<name>-<hash>.zip``: same sources, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(package.rglob("*.py")):
            name = f"{package.name}/{path.relative_to(package).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # no file times in the bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    target = folder / f"{package.name}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    target.write_bytes(data)
    return target


def package_versions() -> dict[str, str | None]:
    """Versions of :data:`WORKER_PACKAGES` in this Python (None: not installed), without importing them."""
    distributions = importlib.metadata.packages_distributions()  # tensorflow may be tensorflow-cpu
    versions: dict[str, str | None] = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for module in WORKER_PACKAGES[1:]:
        try:
            versions[module] = importlib.metadata.version(distributions[module][0])
        except (KeyError, importlib.metadata.PackageNotFoundError):
            versions[module] = None
    return versions


def node_report(archive: str) -> dict[str, Any]:
    """Runs on the scheduler and on each worker, after the upload: what the fits would find there.

    A long-running node may hold modules of an earlier upload, and the upload puts an archive
    first on ``sys.path`` only the first time it sees it: put ``archive`` first and forget
    modules from elsewhere, so the fits import the code sent by this run.
    """
    for entry in [entry for entry in sys.path if os.path.basename(entry) == archive]:
        sys.path.remove(entry)
        sys.path.insert(0, entry)
    # A copy taken at once: a fit still running here (an earlier run's) may import meanwhile, and
    # iterating the live dict then fails with "dictionary changed size during iteration".
    for name, module in sys.modules.copy().items():
        if name.partition(".")[0] == "digits" and archive not in str(getattr(module, "__file__", "")):
            del sys.modules[name]
    report: dict[str, Any] = {"versions": package_versions(), "code": None, "error": None}
    try:
        import digits.training.fit

        report["code"] = digits.training.fit.__file__
    except Exception as exc:  # whatever stops the import stops the fits: report it, do not crash the node
        report["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
    return report


def check_reports(reports: dict[str, Any], archive: str, here: dict[str, str | None]) -> None:
    """Fail on the first node (``"scheduler"`` or a worker address) that cannot run the fits like here.

    ``reports`` maps each node to its :func:`node_report`, or to the exception that stopped it.
    """
    for node, report in reports.items():
        who = "the scheduler" if node == SCHEDULER else f"worker {node}"
        if isinstance(report, BaseException):
            raise PipelineError(
                f"{who} cannot run the project's code ({type(report).__name__}: {_first_line(report)}); "
                "install the pinned requirements.lock there"
            )
        for package in SCHEDULER_PACKAGES if node == SCHEDULER else WORKER_PACKAGES:
            theirs, ours = report["versions"].get(package), here[package]
            if theirs != ours:
                raise PipelineError(
                    f"{who} has {package} {theirs or '(not installed)'}, this machine has "
                    f"{ours or '(not installed)'}; install the same pinned requirements.lock on both"
                )
        if report["error"]:
            raise PipelineError(
                f"{who} cannot import the project's code ({report['error']}); "
                "install the pinned requirements.lock there"
            )
        if archive not in report["code"]:
            raise PipelineError(
                f"{who} imports the project's code from {report['code']}, not the copy sent from "
                "here; remove that copy from its environment"
            )


def fits_timeout(n_tasks: int, n_images: int, epochs: int, workers: int) -> float:
    """Seconds to wait for all the fits: generous, but finite."""
    rounds = math.ceil(n_tasks / max(workers, 1))
    per_fit = epochs * math.ceil(n_images / 10_000) * FIT_SECONDS_PER_EPOCH_PER_10K
    return FITS_BASE_TIMEOUT + rounds * per_fit


def _fit_on_cluster(
    client: Client,
    address: str,
    tasks: list[FitTask],
    x: np.ndarray,
    y: np.ndarray,
    params: Params,
    workers: int,
    receiver: Receiver | None,
) -> list[FitResult]:
    from concurrent.futures import CancelledError

    from distributed import KilledWorker, as_completed

    from digits.training.fit import fit

    report = None
    if receiver:
        report = TopicReport(f"digits-epochs-{uuid.uuid4().hex}")  # this run's only
        client.subscribe_topic(report.topic, lambda event: receiver(_epoch(event[1])))  # (time, message)
    x_data, y_data = _within(client, address, "sending the training data", lambda: client.scatter([x, y]))
    futures = [
        # The first task first (the stage puts the longest there).
        client.submit(fit, task, x_data, y_data, params, report, pure=False, priority=len(tasks) - i)
        for i, task in enumerate(tasks)
    ]
    position = {future.key: i for i, future in enumerate(futures)}
    timeout = fits_timeout(len(tasks), len(x), params.epochs, workers)
    results: dict[int, FitResult] = {}
    try:
        for future, result in as_completed(futures, client.loop, with_results=True, timeout=timeout):
            results[position[future.key]] = result
    except TimeoutError:
        raise PipelineError(
            f"the fits did not finish within {timeout:.0f} s on {address} ({len(results)} of "
            f"{len(tasks)} done); check that its workers are alive (their logs), then run it again"
        ) from None
    except KilledWorker as exc:
        raise PipelineError(
            f"workers at {address} died {exc.allowed_failures + 1} times running one fit (out of memory?); "
            "see their logs; lower data.limit or give them more memory"
        ) from None
    except CancelledError:
        raise PipelineError(f"lost the Dask scheduler at {address} during the fits; run it again") from None
    return [results[i] for i in range(len(tasks))]


def _within(client: Client, address: str, doing: str, call: Callable[[], Any]) -> Any:
    """``call()``, a blocking Client method, with a deadline of :data:`SETUP_TIMEOUT`.

    Called from the client's event loop, Client methods return awaitables: await it there.
    """

    async def bounded() -> Any:
        return await call()

    try:
        return client.sync(bounded, callback_timeout=SETUP_TIMEOUT)
    except TimeoutError:
        raise PipelineError(
            f"the Dask cluster at {address} did not answer within {SETUP_TIMEOUT:.0f} s while {doing}; "
            "see the scheduler's and the workers' logs"
        ) from None
    except Exception as exc:  # raised on the cluster: any of them means it cannot run the fits
        raise PipelineError(
            f"the Dask cluster at {address} failed while {doing}: {type(exc).__name__}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
