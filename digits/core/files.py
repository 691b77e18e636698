"""All-or-nothing writes: an output exists only once it is complete.

Everything is first written under a temporary name in the same folder
(``.<name>.<random>.tmp``, which git ignores) and renamed into place at the end,
so an error, a full disk, Ctrl-C or SIGTERM never leaves a half-written output
that a later stage could take for good. What a hard kill (SIGKILL, power loss)
leaves behind is removed by the next write of the same output.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkdtemp and mkstemp create private (0700/0600) entries; outputs get the usual mode.
_DIR_MODE = 0o777 & ~_umask()
_FILE_MODE = 0o666 & ~_umask()


def remove_stale(path: Path) -> None:
    """Remove what an earlier, hard-killed write of ``path`` left behind (``.<name>.*.tmp*``)."""
    for stale in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp*"):
        shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(_DIR_MODE)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    # Keep the suffix: Keras and NumPy choose the format by it.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(_FILE_MODE)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def file_md5(path: Path) -> str:
    """The MD5 of the file at ``path``: what ``dvc.lock`` records of a file output."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically, with a final newline."""
    # Strict JSON: NaN or Infinity in a metrics file is a bug upstream, not a value to write.
    text = json.dumps(data, indent=2, allow_nan=False)
    with atomic_file(path) as tmp:
        tmp.write_text(text + "\n")
