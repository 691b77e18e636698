"""A project with two commits trained on different data sizes, for review and ``dvc plots diff``.

Small and real: the session's ``trained_project`` (the bundled sample, ``SMALL``: 300
training images, 1 epoch, 2 folds) is the base commit; the head commit trains on
``HEAD_LIMIT`` images for ``HEAD_EPOCHS`` epochs, so the per-epoch plots have lines and an
epoch axis to get wrong. Training the head takes a minute, so the repository is built once
per test run, and each test module or test gets its own copy of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SMALL, built_once, run, write_params

BASE_LIMIT, HEAD_LIMIT, HEAD_EPOCHS = SMALL["data__limit"], 500, 2


def two_revisions(trained_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository: ``HEAD~1`` is ``trained_project``, ``HEAD`` trained on ``HEAD_LIMIT`` images.

    Built once per test run; each call gets its own copy, to run ``dvc`` in at will.
    """

    def build(folder: Path) -> None:
        repo = Path(shutil.copytree(trained_project, folder / "repo", symlinks=True))
        write_params(repo / "params.yaml", **{**SMALL, "data__limit": HEAD_LIMIT, "epochs": HEAD_EPOCHS})
        run(["dvc", "repro"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", f"train on {HEAD_LIMIT} images, {HEAD_EPOCHS} epochs"], repo)

    shared = built_once(tmp_path_factory, "two-revisions", build) / "repo"
    return Path(shutil.copytree(shared, tmp_path_factory.mktemp("two-revisions") / "repo", symlinks=True))
