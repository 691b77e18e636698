"""A project with two commits trained on different data sizes, for review and ``dvc plots diff``.

Small and real: the bundled sample, 2 folds, 2 epochs (so the per-epoch plots have
lines, and their epoch axis has something to get wrong); the base commit trains on
``BASE_LIMIT`` images, the head commit on ``HEAD_LIMIT``. Training it takes a minute or
two, so it is built once per test session and shared: tests only read it (they write
their outputs to their own ``tmp_path``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import copy_project, run, write_params

BASE_LIMIT, HEAD_LIMIT = 200, 400
SMALL = dict(data__source="sample", epochs=2, cv__folds=2, cv__n_jobs=2)


def two_revisions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository: ``HEAD~1`` trained on ``BASE_LIMIT`` images, ``HEAD`` on ``HEAD_LIMIT``."""
    root = tmp_path_factory.getbasetemp()
    repo, done = root / "two-revisions", root / "two-revisions.done"
    if not done.exists():
        shutil.rmtree(repo, ignore_errors=True)  # what a failed build left
        repo.mkdir()
        copy_project(repo, data__limit=BASE_LIMIT, **SMALL)
        for limit in (BASE_LIMIT, HEAD_LIMIT):
            write_params(repo / "params.yaml", data__limit=limit, **SMALL)
            run(["dvc", "repro"], repo)
            run(["git", "add", "-A"], repo)
            run(["git", "commit", "-q", "-m", f"train on {limit} images"], repo)
        done.touch()
    return repo
