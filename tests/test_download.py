import gzip
import hashlib
import http.server
import io
import os
import threading
import time

import numpy as np
import pytest
from conftest import SHARED_MNIST, make_splits, needs_full_mnist

import digits.data.sources as sources
from digits.core.errors import DataError
from digits.core.idx import encode_idx
from digits.core.mnist import FILES, IDX_SHA256, check_canonical, read_raw, write_raw


class Mirrors:
    """Mirrors on 127.0.0.1: /good/ serves the files, /down/ answers 500, /html/ an error page."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                kind, _, name = self.path.strip("/").partition("/")
                if kind == "good" and name in files_:
                    body, status = files_[name], 200
                elif kind == "html":
                    body, status = b"<!DOCTYPE html><html>Service Unavailable</html>", 200
                else:
                    body, status = b"", 500 if kind == "down" else 404
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET  # what validate's probe asks

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, kind: str) -> str:
        return f"{self.base}/{kind}/"


@pytest.fixture
def mirrors(tiny_gz):
    served = Mirrors(tiny_gz)
    yield served
    served.server.shutdown()


def test_mirror_download_falls_through_failing_and_garbage_mirrors(mirrors, tmp_path):
    splits = sources.from_mirrors((mirrors.url("down"), mirrors.url("html"), mirrors.url("good")), tmp_path)
    expected = make_splits()
    for name in ("train", "test"):
        np.testing.assert_array_equal(splits[name].images, expected[name].images)
        np.testing.assert_array_equal(splits[name].labels, expected[name].labels)
    # each bad mirror was tried twice (one retry) before the next one
    assert mirrors.hits[:5] == [
        "/down/train-images-idx3-ubyte.gz",
        "/down/train-images-idx3-ubyte.gz",
        "/html/train-images-idx3-ubyte.gz",
        "/html/train-images-idx3-ubyte.gz",
        "/good/train-images-idx3-ubyte.gz",
    ]


def test_all_mirrors_failing_is_one_clear_error(mirrors, tmp_path):
    with pytest.raises(DataError, match="no mirror worked .*set MNIST_DIR.*data.source: sample"):
        sources.from_mirrors((mirrors.url("down"), mirrors.url("html")), tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded left behind


def test_plain_http_only_to_this_machine(tmp_path):
    with pytest.raises(ValueError, match="refusing to download over http"):
        sources.download("http://example.com/mnist/x.gz", tmp_path / "x.gz")


def test_mnist_dir_is_verified_by_checksum(tiny_gz, tmp_path):
    for name, data in tiny_gz.items():
        (tmp_path / name).write_bytes(data)
    assert len(sources.from_dir(tmp_path)["train"].labels) == 60
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(4)))
    with pytest.raises(DataError, match=r"MNIST_DIR=.*t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"):
        sources.from_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"cannot read t10k-labels-idx1-ubyte.gz \(No such file"):
        sources.from_dir(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        sources.from_dir(tmp_path / "missing")


def test_keras_cache_is_verified(tmp_path, monkeypatch):
    splits = make_splits()
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x_train=splits["train"].images,
        y_train=splits["train"].labels.astype(np.int64),
        x_test=splits["test"].images,
        y_test=splits["test"].labels.astype(np.int64),
    )
    cache = tmp_path / "mnist.npz"
    cache.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="SHA-256 mismatch; not Keras' MNIST file"):
        sources.from_keras_cache(cache)
    monkeypatch.setattr(sources, "KERAS_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    loaded = sources.from_keras_cache(cache)
    np.testing.assert_array_equal(loaded["test"].labels, splits["test"].labels)
    assert loaded["test"].labels.dtype == np.uint8


def test_sample_is_real_stratified_and_fixed():
    splits = sources.from_sample()
    assert splits["train"].images.shape == (4000, 28, 28) and splits["test"].images.shape == (1000, 28, 28)
    assert splits["train"].images.dtype == np.uint8 and splits["train"].images.max() == 255
    assert np.bincount(splits["test"].labels).tolist() == [100] * 10  # the sample has 500 per class
    np.testing.assert_array_equal(sources.from_sample()["test"].images, splits["test"].images)


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No MNIST_DIR, no Keras cache, no mirror that answers."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(sources, "KERAS_CACHE", tmp_path / "none.npz")
    monkeypatch.setenv("MNIST_MIRRORS", "http://127.0.0.1:9/")  # the discard port: refused at once


def test_auto_wants_the_sample_when_nothing_else_can_be_had(nowhere, tmp_path):
    assert sources.wanted("auto", tmp_path / "raw") == (
        "sample",
        "no MNIST_DIR, no Keras cache and no mirror answered",
    )
    assert sources.wanted("mnist", tmp_path / "raw")[0] == "mnist"  # download will then say why not


def test_auto_wants_mnist_once_any_source_has_it(nowhere, tmp_path, monkeypatch, mirrors):
    raw = tmp_path / "raw"
    monkeypatch.setenv("MNIST_MIRRORS", f"http://127.0.0.1:9/ {mirrors.url('good')}")
    assert sources.wanted("auto", raw) == ("mnist", "a mirror answers")
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    assert sources.wanted("auto", raw) == ("mnist", "MNIST_DIR is set")
    assert sources.wanted("sample", raw)[0] == "sample"


def test_full_mnist_once_there_stays_without_network(nowhere, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_raw(raw, make_splits(), "mnist")
    assert sources.wanted("auto", raw) == ("mnist", f"{raw} holds full MNIST")


def test_broken_mnist_dir_is_an_error_that_never_says_delete(nowhere, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="MNIST_DIR=.*nowhere: no such folder"):
        sources.fetch_mnist(tmp_path / "raw", tmp_path)
    (tmp_path / "bad").mkdir()
    for name in sources.GZ_SHA256:
        (tmp_path / "bad" / name).write_bytes(b"<html>not found</html>")
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "bad"))
    with pytest.raises(DataError, match=r"MNIST_DIR=.*bad: .*not gzip.*; fix MNIST_DIR or unset it$") as err:
        sources.fetch_mnist(tmp_path / "raw", tmp_path)
    assert "delete" not in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "huge"])
def test_mnist_dir_reads_are_bounded(tiny_gz, tmp_path, kind):
    for name, data in tiny_gz.items():
        (tmp_path / name).write_bytes(data)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)  # reading it would block forever
    elif kind == "device":
        target.symlink_to("/dev/zero")  # reading it would never end
    else:
        with open(target, "wb") as file:  # sparse: 10 GB that take no disk
            file.truncate(10 << 30)
    start = time.monotonic()
    message = "not a regular file" if kind != "huge" else "10,737,418,240 bytes, far more than the MNIST file"
    with pytest.raises(DataError, match=message):
        sources.from_dir(tmp_path)
    assert time.monotonic() - start < 5


def test_raw_folder_round_trip_and_source_record(tmp_path):
    splits = make_splits()
    write_raw(tmp_path, splits, "sample")
    loaded, info = read_raw(tmp_path)
    np.testing.assert_array_equal(loaded["train"].images, splits["train"].images)
    assert info["source"] == "sample" and info["counts"] == {"train": 60, "test": 20}
    name = FILES["train"][0]
    assert info["sha256"][name] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


def test_generated_data_is_not_canonical():
    with pytest.raises(DataError, match="content differs from canonical MNIST"):
        check_canonical(make_splits())


@needs_full_mnist
def test_full_mnist_is_canonical_whichever_way_obtained(tmp_path, monkeypatch):
    files = {name: (SHARED_MNIST / name).read_bytes() for name in sources.GZ_SHA256}
    served = Mirrors(files)
    try:
        monkeypatch.delenv("MNIST_DIR", raising=False)
        monkeypatch.setattr(sources, "KERAS_CACHE", tmp_path / "none.npz")
        monkeypatch.setenv("MNIST_MIRRORS", served.url("good"))
        mirrored = sources.fetch_mnist(tmp_path / "raw", tmp_path)
    finally:
        served.server.shutdown()
    monkeypatch.setenv("MNIST_DIR", str(SHARED_MNIST))
    local = sources.fetch_mnist(tmp_path / "raw", tmp_path)
    (tmp_path / "raw").mkdir()
    write_raw(tmp_path / "raw", local, "mnist")
    monkeypatch.delenv("MNIST_DIR")
    again = sources.fetch_mnist(tmp_path / "raw", tmp_path)  # from data/raw itself, no other source
    for split, count in {"train": 60_000, "test": 10_000}.items():
        assert len(mirrored[split].labels) == count
        for name, a, b, c in zip(FILES[split], mirrored[split], local[split], again[split], strict=True):
            assert hashlib.sha256(encode_idx(a)).hexdigest() == IDX_SHA256[name]
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
