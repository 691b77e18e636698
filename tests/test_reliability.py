"""Faults and interruptions: one clear line, a non-zero exit, nothing half-written."""

import ast
import errno
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_splits, project_env, write_params

import digits.data.sources as sources
from digits.core import cli
from digits.core.errors import DataError
from digits.core.files import atomic_dir, write_json
from digits.core.idx import encode_idx
from digits.core.mnist import Split, check_split, write_raw

SOURCES = [p for p in (ROOT / "digits").rglob("*.py")] + list((ROOT / "stages").glob("*.py"))


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (
            np.zeros((5, 28, 27), np.uint8),
            np.zeros(5, np.uint8),
            "dimensions (5, 28, 27), expected [N, 28, 28]",
        ),
        (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8), "5 images but 4 labels"),
        (np.zeros((5, 28, 28), np.uint8), np.array([0, 1, 2, 3, 10], np.uint8), "label 10 outside 0..9"),
    ],
)
def test_inconsistent_data_is_rejected(images, labels, message):
    with pytest.raises(DataError, match=re.escape(message)):
        check_split(Split(images, labels), "train")


def test_mnist_dir_entry_that_cannot_be_read(tiny_gz, tmp_path):
    for name, data in tiny_gz.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").mkdir()  # unreadable as a file, even for root
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: not a regular file"):
        sources.from_dir(tmp_path)


def test_mirror_that_times_out(tiny_gz, tmp_path, monkeypatch):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts connections, never answers
    monkeypatch.setattr(sources, "TIMEOUT_S", 0.5)
    start = time.monotonic()
    with pytest.raises(DataError, match="no mirror worked .*timed out"):
        sources.from_mirrors((f"http://127.0.0.1:{listener.getsockname()[1]}/",), tmp_path)
    assert time.monotonic() - start < 10
    listener.close()


def test_wrong_content_behind_a_right_name_is_caught(tiny_gz, tmp_path):
    name = "t10k-images-idx3-ubyte.gz"
    (tmp_path / name).write_bytes(gzip.compress(encode_idx(np.zeros((3, 28, 28), np.uint8))))
    for other, data in tiny_gz.items():
        if other != name:
            (tmp_path / other).write_bytes(data)
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        sources.from_dir(tmp_path)


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    real_write_bytes = Path.write_bytes

    def full_after_first(self, data):
        if self.name.startswith("train-labels"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_after_first)

    def stage():
        with atomic_dir(Path("data/raw")) as tmp:
            write_raw(tmp, make_splits(), "sample")

    stage.__module__ = "stages.download"
    with pytest.raises(SystemExit) as exit_:
        cli.run(stage, filter_stderr=False)
    assert re.fullmatch(
        r"download: error: disk full while writing .*train-labels-idx1-ubyte; "
        r"free some space and run it again",
        str(exit_.value),
    )
    assert not Path("data/raw").exists() and list(Path("data").iterdir()) == []


def test_failed_json_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"accuracy": 1})
    monkeypatch.setattr("json.dumps", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"accuracy": 2})
    assert path.read_text() == '{\n  "accuracy": 1\n}\n' and list(tmp_path.iterdir()) == [path]


@pytest.fixture
def small_project(tmp_path):
    """A project folder with prepared sample data, ready for the train stage."""
    for name in ("digits", "stages"):
        os.symlink(ROOT / name, tmp_path / name)
    write_params(
        tmp_path / "params.yaml", data__source="sample", data__limit=600, epochs=3, cv__folds=2, cv__n_jobs=2
    )
    for stage in ("validate", "download", "preprocess"):
        subprocess.run(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=tmp_path,
            env=project_env(),
            check=True,
            capture_output=True,
        )
    return tmp_path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_training_leaves_no_outputs(small_project, signum):
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=small_project,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for line in process.stdout:  # wait until the fits are under way
        if "epoch" in line:
            break
    os.killpg(process.pid, signum)  # as Ctrl-C does: the whole process group
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "train: interrupted; run it again to finish" in stderr
    assert "Traceback" not in stderr
    for output in ("models", "metrics", "plots"):
        assert not (small_project / output).exists(), output
    assert list(small_project.rglob(".*.tmp*")) == []
    if signum == signal.SIGINT:
        return  # what is left is the same whichever the signal: running it again once is enough
    # running it again recovers
    subprocess.run(
        [sys.executable, "-m", "stages.train"],
        cwd=small_project,
        env=project_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (small_project / "metrics/cv.json").is_file() and (small_project / "models/model.keras").is_file()


def test_os_errors_name_the_file_or_the_cause():
    assert cli.describe_os_error(PermissionError(13, "Permission denied", "models/model.keras")) == (
        "models/model.keras: Permission denied; fix access to it and run it again"
    )
    # distributed's connection timeout: no file, the address is in the message
    timeout = OSError("Timed out trying to connect to tcp://127.0.0.1:9 after 10 s")
    assert (
        cli.describe_os_error(timeout)
        == "OSError: Timed out trying to connect to tcp://127.0.0.1:9 after 10 s"
    )
    assert "disk full while writing data/raw" in cli.describe_os_error(
        OSError(errno.ENOSPC, "No space left on device", "data/raw")
    )


FAILING_STAGE = """
import sys
from digits.core import cli

def main():
    raise OSError("Timed out trying to connect to tcp://127.0.0.1:9 after 10 s")

main.__module__ = "stages.train"
cli.run(main)
"""


@pytest.mark.parametrize("debug", ["", "1"])
def test_digits_debug_shows_the_traceback(debug):
    result = subprocess.run(
        [sys.executable, "-c", FAILING_STAGE],
        cwd=ROOT,
        env={**project_env(), "DIGITS_DEBUG": debug},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    if debug:
        assert "Traceback (most recent call last)" in result.stderr
    else:
        assert result.stderr == (
            "train: error: OSError: Timed out trying to connect to tcp://127.0.0.1:9 after 10 s "
            "(DIGITS_DEBUG=1 shows the traceback)\n"
        )


NOISY_PROCESS = """
import os, sys
from digits.core import quiet

quiet.install()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1795893016.332181   24370 port.cc:153] oneDNN custom operations are on. You may\\n")
os.write(2, b"E0000 00:00:1795893048.268180   24371 node_def_util.cc:682] NodeDef mentions attribute "
         b"use_unbounded_threadpool which is not in the op definition\\n")
os.write(2, b"E0000 00:00:1795893048.268180   24371 other.cc:1] a real error\\n")
print("a real warning", file=sys.stderr)
sys.exit("train: error: the last line")
"""


def test_tensorflow_start_up_noise_is_dropped_and_everything_else_kept():
    result = subprocess.run(
        [sys.executable, "-c", NOISY_PROCESS], cwd=ROOT, env=project_env(), capture_output=True, text=True
    )
    assert result.stderr == (
        "E0000 00:00:1795893048.268180   24371 other.cc:1] a real error\n"
        "a real warning\n"
        "train: error: the last line\n"
    )


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".raw.abc123.tmp").mkdir()
    (tmp_path / ".raw.abc123.tmp" / "half").write_bytes(b"x")
    (tmp_path / ".cv.json.def456.tmp.json").write_text("{")
    (tmp_path / ".other.ghi.tmp").mkdir()  # another output's: not ours to remove
    with atomic_dir(tmp_path / "raw") as tmp:
        (tmp / "file").write_text("done")
    write_json(tmp_path / "cv.json", {"accuracy": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.ghi.tmp", "cv.json", "raw"]


def test_metrics_are_strict_json():
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_json(Path("never-written.json"), {"accuracy": float("nan")})
    assert not Path("never-written.json").exists()


UNSAFE_MODULES = {"pickle", "cPickle", "dill", "shelve", "marshal"}
SAFE_FLAGS = {"allow_pickle": False, "safe_mode": True}  # keyword -> the only value allowed


def unsafe(source: str) -> list[str]:
    """What in ``source`` could run code it did not mean to: pickle, a shell, unsafe loading, http."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                found.append(f"from {node.module} import")
            if node.module == "os":
                found += [f"from os import {a.name}" for a in node.names if a.name in ("system", "popen")]
        elif isinstance(node, ast.Call):
            call = ast.unparse(node.func)
            if call in ("os.system", "os.popen", "eval", "exec"):
                found.append(f"{call}()")
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "shell" and not (isinstance(value, ast.Constant) and not value.value):
                    found.append(f"{call}(shell={ast.unparse(value)})")
                if keyword.arg in SAFE_FLAGS and not (
                    isinstance(value, ast.Constant) and value.value is SAFE_FLAGS[keyword.arg]
                ):
                    found.append(f"{call}({keyword.arg}={ast.unparse(value)})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "http://" in node.value:
            found.append(repr(node.value))
    return found


@pytest.mark.parametrize(
    "source",
    [
        "subprocess.run(command, shell = True)",
        "subprocess.check_output(command, shell=flag)",
        "from pickle import loads",
        "import pickle as p",
        "import shelve",
        "os.system('ls')",
        "from os import system",
        "keras.models.load_model(path, compile=False, safe_mode=False)",
        "np.load(path, allow_pickle=True)",
        "np.load(path, allow_pickle=ok)",
        "url = f'http://{host}/mnist.npz'",
    ],
)
def test_the_safety_check_sees_through_spelling(source):
    assert unsafe(source), source


def test_no_pickle_no_shell_no_unsafe_model_loading():
    for path in SOURCES:
        assert not unsafe(path.read_text()), path
    calls = [call for path in SOURCES for call in re.findall(r"(allow_pickle|safe_mode)=", path.read_text())]
    assert {"allow_pickle", "safe_mode"} <= set(calls)  # the loaders say so explicitly


def bare_python(tmp_path: Path) -> Path:
    """A Python with none of the project's dependencies."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return bare / "bin" / "python"


def test_commands_outside_the_environment_end_in_a_one_line_hint(tmp_path):
    code = tmp_path / "elsewhere"  # the project's code, with no .venv beside it
    shutil.copytree(ROOT / "digits", code / "digits", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [str(bare_python(tmp_path)), "-m", "digits.use.predict", "seven.png"],
        cwd=code,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("digits: the project's dependencies are not installed for ")
    assert result.stderr.count("\n") == 1 and "run `make run` once to create .venv" in result.stderr


def test_a_stage_run_by_another_python_uses_the_projects_venv(tmp_path):
    # `.venv/bin/dvc repro` without activation: the stages get the `python` on PATH.
    result = subprocess.run(
        [str(bare_python(tmp_path)), "-c", "import digits.core.params, sys; print(sys.prefix)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == (ROOT / ".venv").resolve()


def test_ctrl_c_while_a_stage_imports_is_one_line(tmp_path):
    # Before main() starts, stages.train imports pandas, scikit-learn and the project: seconds.
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "stages.train"],
        cwd=tmp_path,  # no project here: had it got as far as main(), it would fail, not train
        env={**project_env(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stderr:  # -X importtime: one line per module imported
        if "sklearn" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if not line.startswith("import time:")]
    assert process.returncode == 1 and lines == ["train: interrupted; run it again to finish"], stderr[-2000:]
