import gzip
import hashlib
import http.server
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MNIST, make_splits, needs_full_mnist

import stages.download as download
from digits.errors import DataError
from digits.idx import encode_idx
from digits.mnist import FILES, IDX_SHA256, check_canonical, read_raw, write_raw


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
    splits = download.from_mirrors((mirrors.url("down"), mirrors.url("html"), mirrors.url("good")), tmp_path)
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
        download.from_mirrors((mirrors.url("down"), mirrors.url("html")), tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded left behind


def test_plain_http_only_to_this_machine(tmp_path):
    with pytest.raises(ValueError, match="refusing to download over http"):
        download.download("http://example.com/mnist/x.gz", tmp_path / "x.gz")


def test_mnist_dir_is_verified_by_checksum(tiny_gz, tmp_path):
    for name, data in tiny_gz.items():
        (tmp_path / name).write_bytes(data)
    assert len(download.from_dir(tmp_path)["train"].labels) == 60
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(4)))
    with pytest.raises(DataError, match=r"MNIST_DIR=.*t10k-labels-idx1-ubyte.gz: SHA-256 mismatch"):
        download.from_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"cannot read t10k-labels-idx1-ubyte.gz \(No such file"):
        download.from_dir(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        download.from_dir(tmp_path / "missing")


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
    with pytest.raises(DataError, match="SHA-256 mismatch; delete it"):
        download.from_keras_cache(cache)
    monkeypatch.setattr(download, "KERAS_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    loaded = download.from_keras_cache(cache)
    np.testing.assert_array_equal(loaded["test"].labels, splits["test"].labels)
    assert loaded["test"].labels.dtype == np.uint8


def test_sample_is_real_stratified_and_fixed():
    splits = download.from_sample()
    assert splits["train"].images.shape == (4000, 28, 28) and splits["test"].images.shape == (1000, 28, 28)
    assert splits["train"].images.dtype == np.uint8 and splits["train"].images.max() == 255
    assert np.bincount(splits["test"].labels).tolist() == [100] * 10  # the sample has 500 per class
    np.testing.assert_array_equal(download.from_sample()["test"].images, splits["test"].images)


def test_auto_falls_back_to_sample_with_a_warning(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setattr(download, "KERAS_CACHE", tmp_path / "none.npz")
    splits, source = download.fetch("auto", tmp_path, mirrors=("https://127.0.0.1:9/",))
    assert source == "sample" and len(splits["test"].labels) == 1000
    assert "WARNING: falling back to the 5,000-digit sample" in capsys.readouterr().err
    with pytest.raises(DataError, match="no mirror worked"):
        download.fetch("mnist", tmp_path, mirrors=("https://127.0.0.1:9/",))


def test_broken_mnist_dir_is_an_error_even_in_auto(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no such folder"):
        download.fetch("auto", tmp_path)


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


def test_failed_stage_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(
        (Path(__file__).parents[1] / "params.yaml").read_text().replace("source: auto", "source: mnist")
    )
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot read"):
        download.main()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["params.yaml"]
    assert not Path("data/raw").exists()


@needs_full_mnist
def test_full_mnist_is_canonical_whichever_way_obtained(tmp_path, monkeypatch):
    files = {name: (SHARED_MNIST / name).read_bytes() for name in download.GZ_SHA256}
    served = Mirrors(files)
    try:
        monkeypatch.delenv("MNIST_DIR", raising=False)
        monkeypatch.setattr(download, "KERAS_CACHE", tmp_path / "none.npz")
        mirrored, source = download.fetch("mnist", tmp_path, mirrors=(served.url("good"),))
    finally:
        served.server.shutdown()
    monkeypatch.setenv("MNIST_DIR", str(SHARED_MNIST))
    local, _ = download.fetch("mnist", tmp_path)
    assert source == "mnist"
    for split, count in {"train": 60_000, "test": 10_000}.items():
        assert len(mirrored[split].labels) == count
        for name, a, b in zip(FILES[split], mirrored[split], local[split], strict=True):
            assert hashlib.sha256(encode_idx(a)).hexdigest() == IDX_SHA256[name]
            np.testing.assert_array_equal(a, b)
