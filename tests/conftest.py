"""Shared fixtures: tiny generated MNIST-like data, the real files when present, a project copy."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from filelock import FileLock

from digits.core.idx import encode_idx
from digits.core.mnist import FILES, Split

ROOT = Path(__file__).resolve().parents[1]


_GIVEN_MNIST_DIR = "DIGITS_TESTS_MNIST_DIR"  # MNIST_DIR, handed on to the xdist workers


def _full_mnist() -> tuple[Path | None, str]:
    """The full MNIST files for the tests: MNIST_DIR, else the maintainers' ../shared/data/mnist.

    An empty MNIST_DIR means none, as on a user's clone (``MNIST_DIR= make test``). MNIST_DIR
    then leaves this process's environment, so the code under test sees the same environment
    whoever runs the suite. Returns the folder or None, and what is wrong with a given MNIST_DIR.
    """
    given = os.environ.pop("MNIST_DIR", None)
    if given is None:  # a pytest-xdist worker: what the run was given, from the controller
        given = os.environ.get(_GIVEN_MNIST_DIR)
    else:
        os.environ[_GIVEN_MNIST_DIR] = given
    folder = Path(given) if given else ROOT.parent / "shared" / "data" / "mnist"
    missing = [f"{n}.gz" for names in FILES.values() for n in names if not (folder / f"{n}.gz").is_file()]
    if given and missing:
        return None, f"MNIST_DIR={given}: no {missing[0]} there; give the folder of the four .gz files"
    return (None if given == "" or missing else folder), ""


# The full MNIST files, or None: then the tests marked `mnist` (needs_full_mnist) are skipped.
SHARED_MNIST, _MNIST_DIR_ERROR = _full_mnist()
needs_full_mnist = pytest.mark.mnist


def pytest_configure(config: pytest.Config) -> None:
    if _MNIST_DIR_ERROR:  # asked for, not there: the tests that need it must not skip
        raise pytest.UsageError(_MNIST_DIR_ERROR)


# This process runs fits like a training worker does: oneDNN, one thread, deterministic ops. Like
# a stage, it keeps TensorFlow's C++ start-up lines off the terminal: they come at this import,
# outside any test's capture, and pytest-xdist would print them after the summary.
from digits.core import quiet  # noqa: E402
from digits.training.fit import _configure_tensorflow  # noqa: E402

quiet.install()
_configure_tensorflow()


def make_splits(n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict[str, Split]:
    """Random digits with every class present: uint8 images [N, 28, 28], labels [N]."""
    rng = np.random.default_rng(seed)
    return {
        name: Split(
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            (np.arange(n) % 10).astype(np.uint8),
        )
        for name, n in (("train", n_train), ("test", n_test))
    }


def gz_files(splits: dict[str, Split]) -> dict[str, bytes]:
    """The splits as the four canonical ``.gz`` files: name -> bytes."""
    files = {}
    for split, names in FILES.items():
        for name, array in zip(names, splits[split], strict=True):
            files[f"{name}.gz"] = gzip.compress(encode_idx(array), mtime=0)
    return files


@pytest.fixture
def tiny_gz(monkeypatch) -> dict[str, bytes]:
    """Small generated ``.gz`` files, with the download stage told their checksums."""
    import hashlib

    import digits.data.sources

    files = gz_files(make_splits())
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    monkeypatch.setattr(digits.data.sources, "GZ_SHA256", checksums)
    return files


def project_env() -> dict[str, str]:
    """Environment for subprocesses: this venv first on PATH, quiet TF, a git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    env.pop("MNIST_DIR", None)
    return env


def run(args: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run a command in ``cwd``; return it with stdout and stderr as text."""
    result = subprocess.run(
        args, cwd=cwd, env={**project_env(), **env}, capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


PROJECT_FILES = (
    "digits",
    "stages",
    "dvc.yaml",
    "params.yaml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/offline.html",
    ".dvc/plots",
)


def copy_project(dest: Path, **overrides) -> Path:
    """Copy the pipeline's code into a new git repository at ``dest``, params overridden.

    ``overrides`` maps dotted keys with ``__`` for dots (``data__limit=500``) to values.
    """
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    write_params(dest / "params.yaml", **overrides)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "pipeline"], dest)
    return dest


# The pipeline on the bundled sample: 300 training images, 2 folds, 1 epoch.
SMALL = dict(data__source="sample", data__limit=300, epochs=1, cv__folds=2, cv__n_jobs=2)


def stages_run(output: str) -> list[str]:
    """The stages ``dvc repro`` or ``dvc exp run`` ran, in order, from its output."""
    return re.findall(r"Running stage '(\w+)'", output)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` that ``build(folder)`` fills, once for the whole test run.

    Under pytest-xdist the workers share it: the first to ask builds it while the others wait.
    A build that failed is started again by the next to ask.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def _train_small_project(folder: Path) -> None:
    repo = copy_project(folder / "repo", **SMALL)
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["validate", "download", "preprocess", "train", "evaluate", "plot"]
    (folder / "repro.log").write_text(result.stdout + result.stderr)  # what the user saw
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "first run"], repo)


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> Path:
    """A git repository where ``dvc repro`` has run on SMALL and the results are committed.

    Built once per test run; tests only read it, and those that run commands in it take a copy
    (``project``). Its ``dvc repro`` output is in ``repro.log`` beside it.
    """
    return built_once(tmp_path_factory, "trained", _train_small_project) / "repo"


@pytest.fixture
def project(trained_project, tmp_path) -> Path:
    """A private copy of ``trained_project`` (git history and DVC cache included) to change at will."""
    return Path(shutil.copytree(trained_project, tmp_path / "project", symlinks=True))


def publish(repo: Path, where: Path) -> Path:
    """Push a copy of ``repo`` to a new bare git remote and local-directory DVC remote under ``where``.

    Every commit's ``.dvc/config`` names the DVC remote (the history is rewritten as if the project
    had had it from the start), so any revision's data can be fetched. Its path is absolute: ``dvc exp
    push`` resolves a relative one against the experiment's commit, not the clone. Pushed: all
    branches, all commits' data, and the run-cache with its outputs (``digits.use.share``); then the
    copy is deleted, so the remotes hold the only copy. Returns the git remote's path, to clone.
    """
    work, git_remote, storage = where / "publish", where / "origin.git", where / "storage"
    shutil.copytree(repo, work, symlinks=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(git_remote)], where)
    run(["git", "remote", "add", "origin", str(git_remote)], work)
    run(["dvc", "remote", "add", "--default", "storage", str(storage)], work)
    config = where / "dvc-config"
    shutil.move(work / ".dvc" / "config", config)
    run(["git", "checkout", ".dvc/config"], work)
    amend = f"cp {shlex.quote(str(config))} .dvc/config && git commit -qa --amend --no-edit"
    run(["git", "rebase", "-q", "--root", "--exec", amend], work)
    run(["git", "push", "-q", "origin", "--all"], work)
    run([sys.executable, "-m", "digits.use.share", "--all-commits"], work)  # dvc push --run-cache, and more
    shutil.rmtree(work)
    return git_remote


def git_clone(git_remote: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(git_remote), str(dest)], dest.parent)
    return dest


def snapshot(repo: Path, *names: str) -> dict[str, str]:
    """The SHA-256 of every file under ``names`` in ``repo``: to show that a failure changed nothing.

    Digests, not bytes: a failed comparison names the files that differ in a few lines.
    """
    files = {}
    for name in names:
        root = repo / name
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            files[path.relative_to(repo).as_posix()] = digest(path)
    return files


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def params_tree(**overrides) -> dict:
    """The committed params.yaml as a dict, with ``overrides`` (``cv__folds=2`` sets cv.folds)."""
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        *path, leaf = key.split("__")
        node = tree
        for part in path:
            node = node[part]
        node[leaf] = value
    return tree


def write_params(path: Path, **overrides) -> None:
    path.write_text(yaml.safe_dump(params_tree(**overrides), sort_keys=False))


def assert_same_fits(a: list, b: list, folder: Path) -> None:
    """Two runs of the same fits (lists of FitResult): same names, histories and weights, bit for bit."""
    from digits.training.model import load_model

    def weights(result) -> list[np.ndarray]:
        path = folder / "model.keras"
        path.write_bytes(result.model)
        return load_model(path).get_weights()

    assert [r.name for r in a] == [r.name for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.history == rb.history
        for wa, wb in zip(weights(ra), weights(rb), strict=True):
            np.testing.assert_array_equal(wa, wb)


def sampled_at(layer, images: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Where ``layer`` sampled each output pixel in training, [images, side, side, 2] (row, column),
    and each pixel's own place: it warps two channels that hold each pixel's row and column
    number, and bilinear sampling of them gives back where it sampled (inside the image)."""
    import keras

    rows = np.broadcast_to(np.arange(side, dtype=np.float32)[:, None], (side, side))
    grid = np.broadcast_to(np.stack([rows, rows.T], axis=-1), (images, side, side, 2)).copy()
    return keras.ops.convert_to_numpy(layer(grid, training=True)), grid


def assert_augments_training_images_only(layer_of_seed: Callable[[int], Any]) -> None:
    """An augmentation layer (``layer_of_seed(seed)``) changes each of 8 digits its own way in
    training, within the pixel range, the same for the same seed, and none outside training."""
    import keras

    digits = np.zeros((8, 28, 28, 1), np.float32)
    digits[:, 8:20, 12:16] = 1

    def changed(seed: int, training: bool = True) -> np.ndarray:
        return keras.ops.convert_to_numpy(layer_of_seed(seed)(digits, training=training))

    once = changed(seed=3)
    assert not np.array_equal(once, digits) and 0 <= once.min() and once.max() <= 1
    assert len({image.tobytes() for image in once}) == 8
    np.testing.assert_array_equal(changed(seed=3), once)
    assert not np.array_equal(changed(seed=4), once)
    np.testing.assert_array_equal(changed(seed=3, training=False), digits)


def assert_fits_augmented_deterministically(params, layer_class: type, folder: Path, monkeypatch) -> None:
    """Two fits with ``params`` are the same, bit for bit; with ``layer_class`` passing images
    through (the same draws of every seed), the fit differs: the layer changed what it trained on."""
    from digits.training.fit import FitTask, fit

    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(128) % 10]
    task = FitTask("fold 1/2", seed=3, train_index=np.arange(0, 128, 2), val_index=np.arange(1, 128, 2))
    first, second = fit(task, x, y, params), fit(task, x, y, params)
    assert_same_fits([first], [second], folder)
    monkeypatch.setattr(layer_class, "call", lambda self, images, training=None: images)
    assert fit(task, x, y, params).history["loss"] != first.history["loss"]


def make_params(**overrides):
    """The committed params with ``overrides``, validated."""
    from digits.core.params import parse_params

    return parse_params(params_tree(**overrides))


def recipe_params(name: str = "modern", extra: dict | None = None):
    """A recipe's params (``digits/reporting/recipes.py``), ``extra`` (dotted keys) on top, validated."""
    from digits.reporting.recipes import overrides

    return make_params(**{key.replace(".", "__"): value for key, value in overrides(name, extra).items()})


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.chromium
# In CI (CI=true, as GitHub Actions sets it) a test that needs Chromium fails without it.
ON_CI = os.environ.get("CI") == "true"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip what the machine cannot run, saying how to include it; in CI, fail without Chromium."""
    if item.get_closest_marker("mnist") and SHARED_MNIST is None:
        pytest.skip("needs full MNIST: MNIST_DIR=/path/to/mnist make test includes it")
    if item.get_closest_marker("chromium") and not CHROMIUM:
        if ON_CI:
            pytest.fail("CI=true and Chromium is not installed: apt-get install chromium", pytrace=False)
        pytest.skip("needs Chromium: apt-get install chromium")


# Headless, and nothing it does on its own: no network of its own, no updates, no sync.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(url: str, workdir: Path, *args: str) -> str:
    """Headless Chromium on ``url`` with no network and a fresh profile; its stdout (``--dump-dom``)."""
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}", "--virtual-time-budget=10000"]
    return run([CHROMIUM, *flags, *args, url], workdir).stdout


def screenshot(url: str, workdir: Path, size: str = "1000,1400") -> Path:
    """A headless Chromium screenshot of ``url`` with no network, as ``workdir/shot.png``."""
    shot = workdir / "shot.png"
    chromium(url, workdir, f"--window-size={size}", f"--screenshot={shot}")
    return shot
