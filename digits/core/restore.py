"""Put a stage's outputs back as ``dvc.lock`` records them, from DVC's cache.

DVC deletes a stage's outputs before it runs the stage's command; that is what lets its
run-cache restore them when a param set comes back. So a stage that fails would leave
none, or a mix of new and missing ones. Instead, a failing stage puts back the outputs of
its last good run (:func:`digits.core.cli.run` calls :func:`restore_stage`), and after a
hard kill, which no process can clean up after, ``digits-restore`` does the same for
every stage. The bytes come from DVC's cache, where DVC keeps every output of every run,
the ``cache: false`` metrics and plots included (the run-cache keeps them there too).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from digits.core import cli
from digits.core.errors import DataError
from digits.core.files import atomic_dir, atomic_file, file_md5
from digits.core.lock import LOCK, locked_outputs, locked_stages


def _cache() -> Path:
    """Where DVC keeps the objects (``dvc cache dir`` may move it)."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        return Path(repo.cache.local.path)


def _object(cache: Path, md5: str) -> Path:
    return cache / md5[:2] / md5[2:]


def _files(cache: Path, path: Path, md5: str) -> dict[Path, str] | None:
    """What ``path`` should hold: file -> md5; None if the cache lacks any of it."""
    if not md5.endswith(".dir"):
        return {path: md5} if _object(cache, md5).is_file() else None
    manifest = _object(cache, md5)
    if not manifest.is_file():
        return None
    files = {path / entry["relpath"]: entry["md5"] for entry in json.loads(manifest.read_text())}
    return files if all(_object(cache, m).is_file() for m in files.values()) else None


def _is_intact(path: Path, files: dict[Path, str]) -> bool:
    if path.is_dir() and {p for p in path.rglob("*") if p.is_file()} != set(files):
        return False
    return all(file.is_file() and file_md5(file) == digest for file, digest in files.items())


def restore_stage(stage: str) -> list[Path]:
    """Put back each output of ``stage`` whose bytes differ from ``dvc.lock``; return those.

    All or nothing: if DVC's cache lacks any of them, nothing is touched (DataError).
    """
    outputs = locked_outputs(stage)
    if not outputs:
        return []
    cache = _cache()
    wanted = {path: _files(cache, path, md5) for path, md5 in outputs.items()}
    stale = {
        path: files for path, files in wanted.items() if not _is_intact(path, files or {path: outputs[path]})
    }
    missing = sorted(str(path) for path, files in stale.items() if files is None)
    if missing:
        raise DataError(
            f"DVC's cache lacks the last good {', '.join(missing)}; "
            "`dvc pull` fetches them from the remote, or `dvc repro` makes them anew"
        )
    for path, files in stale.items():
        if outputs[path].endswith(".dir"):
            with atomic_dir(path) as tmp:
                for file, md5 in files.items():
                    (tmp / file.relative_to(path)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(_object(cache, md5), tmp / file.relative_to(path))
        else:
            with atomic_file(path) as tmp:
                shutil.copyfile(_object(cache, files[path]), tmp)
    return list(stale)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="digits-restore",
        description="Put the pipeline's outputs back as dvc.lock records them, from DVC's cache "
        "(after a run that was killed).",
    )
    parser.add_argument("stages", nargs="*", help="stages to restore (default: every stage in dvc.lock)")
    args = parser.parse_args(argv)
    if not LOCK.is_file():
        raise DataError(f"{LOCK}: missing; run this in the project's folder, after a dvc repro")
    stages = args.stages or locked_stages()
    restored = [path for stage in stages for path in restore_stage(stage)]
    names = ", ".join(map(str, restored)) or "nothing: every output is as dvc.lock records it"
    print(f"restore: {names}")


def run() -> None:
    cli.run(main)


if __name__ == "__main__":
    run()
