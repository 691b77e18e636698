import gzip

import numpy as np
import pytest

from digits.core.errors import DataError
from digits.core.idx import decode_idx, encode_idx, read_idx


def test_round_trip_images_and_labels(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, 28, 28)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    (tmp_path / "images").write_bytes(encode_idx(images))
    (tmp_path / "labels.gz").write_bytes(gzip.compress(encode_idx(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "images", 3), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz", 1), labels)


def test_header_is_the_canonical_one():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 3])
    assert int.from_bytes(data[4:8], "big") == 2 and len(data) == 16 + 2 * 784


@pytest.mark.parametrize(
    "data, ndim, message",
    [
        (b"", 1, "empty file"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", 1, "truncated or corrupt"),
        (encode_idx(np.zeros(4, np.uint8)), 3, "wrong IDX magic 00000801 (expected 00000803)"),
        (b"\x00\x00\x0d\x01" + bytes(8), 1, "wrong IDX magic"),
        (b"\x00\x00\x08\x03\x00\x00", 3, "truncated IDX header"),
    ],
)
def test_corrupt_idx_is_rejected_with_its_name(data, ndim, message):
    with pytest.raises(DataError, match="^labels.idx: ") as excinfo:
        decode_idx(data, "labels.idx", ndim)
    assert message in str(excinfo.value)


def test_not_gzip_and_truncated_gzip(tmp_path):
    html = tmp_path / "train-labels-idx1-ubyte.gz"
    html.write_bytes(b"<html><body>503 Service Unavailable</body></html>")
    with pytest.raises(DataError, match=r"not gzip \(starts with '<html><body>503 '\)"):
        read_idx(html, 1)
    truncated = tmp_path / "t10k-labels-idx1-ubyte.gz"
    truncated.write_bytes(gzip.compress(encode_idx(np.zeros(1000, np.uint8)))[:-20])
    with pytest.raises(DataError, match="damaged or truncated gzip"):
        read_idx(truncated, 1)
