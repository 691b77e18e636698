"""A project with two commits trained on different data sizes, for review and ``dvc plots diff``.

Small and real: the session's ``trained_project`` (the bundled sample, ``SMALL``: 300
training images, 1 epoch, 2 folds) is the base commit; the head commit trains on
``HEAD_LIMIT`` images for ``HEAD_EPOCHS`` epochs, so the per-epoch plots have lines and an
epoch axis to get wrong. Training the head takes a minute, so the repository is built once
per test session and shared: tests only read it (they write to their own ``tmp_path``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SMALL, run, write_params

BASE_LIMIT, HEAD_LIMIT, HEAD_EPOCHS = SMALL["data__limit"], 500, 2


def two_revisions(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository: ``HEAD~1`` is ``trained_project``, ``HEAD`` trained on ``HEAD_LIMIT`` images."""
    root = tmp_path_factory.getbasetemp()
    repo, done = root / "two-revisions", root / "two-revisions.done"
    if not done.exists():
        shutil.rmtree(repo, ignore_errors=True)  # what a failed build left
        shutil.copytree(trained_project, repo, symlinks=True)
        write_params(repo / "params.yaml", **{**SMALL, "data__limit": HEAD_LIMIT, "epochs": HEAD_EPOCHS})
        run(["dvc", "repro"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", f"train on {HEAD_LIMIT} images, {HEAD_EPOCHS} epochs"], repo)
        done.touch()
    return repo
