"""The IDX format of the MNIST files: big-endian header, then raw uint8 data.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one uint32 per dimension. Images are IDX3 ``[N, 28, 28]``
(magic 2051), labels IDX1 ``[N]`` (magic 2049).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from digits.core.errors import DataError

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX bytes."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX holds uint8 data, got {array.dtype}")
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array).tobytes()


def decode_idx(data: bytes, name: str, ndim: int) -> np.ndarray:
    """Parse IDX bytes holding an ``ndim``-dimensional uint8 array.

    ``name`` is the file's name, for the error message.
    """
    fix = "re-create it: dvc repro -f download"
    if len(data) == 0:
        raise DataError(f"{name}: empty file; {fix}")
    if len(data) < 4 or data[:3] != bytes([0, 0, UBYTE]) or data[3] != ndim:
        raise DataError(
            f"{name}: wrong IDX magic {data[:4].hex() or 'none'} (expected 000008{ndim:02x}); "
            f"not an MNIST {'image' if ndim == 3 else 'label'} file; {fix}"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{name}: truncated IDX header; {fix}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{name}: {len(data)} bytes for dimensions {shape} (expected {expected}); "
            f"truncated or corrupt; {fix}"
        )
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file, gzip-compressed (``.gz`` or gzip's first bytes) or not."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == GZIP_MAGIC:
        data = gunzip(data, path.name)
    return decode_idx(data, path.name, ndim)


def require_gzip(data: bytes, name: str) -> None:
    """Raise :class:`DataError` unless ``data`` starts like a gzip stream."""
    if data[:2] != GZIP_MAGIC:
        start = data[:16].decode("latin-1")
        raise DataError(f"{name}: not gzip (starts with {start!r}); not the canonical file (an error page?)")


def gunzip(data: bytes, name: str) -> bytes:
    """Decompress gzip bytes; anything else, truncated or damaged is a :class:`DataError`."""
    require_gzip(data, name)
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(f"{name}: damaged or truncated gzip ({exc}); not the canonical file") from None
