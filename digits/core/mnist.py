"""The MNIST dataset as the pipeline stores it in ``data/raw``.

``data/raw`` holds the four files uncompressed, exactly as the canonical
distribution decompresses, plus ``source.json`` saying which data it is. One
canonical form means the same bytes (and the same ``dvc.lock``) whether the
files came from a mirror, ``MNIST_DIR`` or the Keras cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from digits.core.errors import RESTORE, DataError
from digits.core.idx import encode_idx, read_idx

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


class Split(NamedTuple):
    """One part of the dataset: uint8 images [N, 28, 28] and labels [N] in 0..9."""

    images: np.ndarray
    labels: np.ndarray


# split -> (images file, labels file), as the canonical files are named without ".gz".
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# SHA-256 of the canonical .gz files as published, and of their decompressed IDX bytes.
GZ_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SOURCE_FILE = "source.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_split(split: Split, name: str) -> None:
    """Raise :class:`DataError` unless ``split`` is a consistent set of digits."""
    images, labels = split
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{name}: images have dimensions {images.shape}, expected [N, 28, 28]; "
            "not MNIST images; re-run the download stage"
        )
    if labels.shape != (len(images),):
        raise DataError(
            f"{name}: {len(images)} images but {labels.size} labels; the files do not belong "
            "together; re-run the download stage"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(
            f"{name}: label {int(labels.max())} outside 0..9; not MNIST labels; re-run the download stage"
        )


def check_canonical(splits: dict[str, Split]) -> None:
    """Raise :class:`DataError` unless ``splits`` is the full canonical MNIST, byte for byte."""
    for split, (images_file, labels_file) in FILES.items():
        for name, array in zip((images_file, labels_file), splits[split], strict=True):
            if sha256(encode_idx(array)) != IDX_SHA256[name]:
                raise DataError(
                    f"{name}: content differs from canonical MNIST (SHA-256 mismatch); "
                    "the source is corrupt or not MNIST; use the canonical files"
                )


def write_raw(folder: Path, splits: dict[str, Split], source: str) -> None:
    """Write ``splits`` as uncompressed IDX files plus ``source.json`` into ``folder``."""
    checksums = {}
    for split, names in FILES.items():
        check_split(splits[split], split)
        for name, array in zip(names, splits[split], strict=True):
            data = encode_idx(array)
            (folder / name).write_bytes(data)
            checksums[name] = sha256(data)
    info = {
        "source": source,
        "counts": {split: len(splits[split].labels) for split in FILES},
        "sha256": checksums,
    }
    (folder / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n")


def read_source(folder: Path) -> dict:
    """The ``source.json`` that :func:`write_raw` wrote: source, counts and checksums."""
    path = Path(folder) / SOURCE_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; {RESTORE}") from None
    except json.JSONDecodeError:
        raise DataError(f"{path}: corrupt; run: dvc repro -f download") from None


def read_raw(folder: Path) -> tuple[dict[str, Split], dict]:
    """Read what :func:`write_raw` wrote; return the splits and the source info."""
    folder = Path(folder)
    info = read_source(folder)
    try:
        splits = {
            split: Split(read_idx(folder / images, 3), read_idx(folder / labels, 1))
            for split, (images, labels) in FILES.items()
        }
    except FileNotFoundError as exc:
        raise DataError(f"{exc.filename}: missing; {RESTORE}") from None
    for split, data in splits.items():
        check_split(data, f"{folder}/{FILES[split][0]}")
    return splits, info
