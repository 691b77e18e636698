"""The draw-a-digit server and predict under hostile input, on the real server on loopback.

Large-but-legal images at once, formats other than images, other sites and foreign Host
headers, crafted model files.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ROOT, make_params, project_env, run
from inprocess import InProcessServer
from PIL import Image, ImageDraw

HOST = "127.0.0.1"
# A 7 drawn on a 40-megapixel sheet (just under photo.MAX_PIXELS): about 150 KB as a PNG.
LARGE = (7000, 5700)
AT_ONCE = 10

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc (Linux)")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An untrained model: its answers do not matter here, only that it gives some."""
    from digits.training.model import build_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    build_model(make_params(), seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def large_png() -> bytes:
    image = Image.new("RGB", LARGE, "white")
    ImageDraw.Draw(image).line([(1500, 1200), (5500, 1200), (2500, 5000)], fill="black", width=500)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def drawing() -> bytes:
    image = Image.new("L", (140, 140), 255)
    ImageDraw.Draw(image).line([(35, 30), (105, 30), (60, 115)], fill=0, width=10)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def peak_rss_mb(status: str) -> float:
    """A process's peak resident memory so far (the kernel's high-water mark), in MB, from the
    text of its ``/proc/<pid>/status``."""
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Client:
    port: int

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 60, **headers: str
    ) -> tuple[int, dict, bytes]:
        """One request on its own connection: the status, the headers (lower-case names), the body."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            headers = {name.replace("_", "-"): value for name, value in headers.items()}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


class InProcess(Client, InProcessServer):
    """The app in a thread of this process, with :meth:`Client.request`."""


class Served(Client):
    """``python -m digits.use.serve`` on a free loopback port, in its own process."""

    def __init__(self, model: Path, *args: str) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "digits.use.serve", "--port", str(self.port), "--model", str(model)]
        self.process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=project_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def __enter__(self) -> Served:
        deadline = time.monotonic() + 180  # TensorFlow starts slowly on a busy machine
        while True:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if self.request("GET", "/api/status")[0] == 200:
                    return self
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.out, self.err = (text.decode() for text in self.process.communicate(timeout=30))


@pytest.fixture(scope="module")
def served(model):
    with Served(model) as server:
        yield server


def test_large_uploads_at_once_keep_the_servers_memory_bounded(served, large_png):
    assert served.request("POST", "/api/predict", drawing())[0] == 200
    before = peak_rss_mb(Path(f"/proc/{served.process.pid}/status").read_text())
    start = time.monotonic()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        answers = list(pool.map(lambda _: served.request("POST", "/api/predict", large_png), range(AT_ONCE)))
    elapsed = time.monotonic() - start
    peak = peak_rss_mb(Path(f"/proc/{served.process.pid}/status").read_text())
    for status, _, body in answers:
        assert status == 200 and "predictions" in json.loads(body), (status, body[:200])
    # About 200 MB per decode, two at a time (with these at once, 700 MB each before).
    assert peak - before < 700, f"the server grew from {before:.0f} MB to a peak of {peak:.0f} MB"
    assert elapsed < 60
    # ... and it answers normally afterwards.
    status, _, body = served.request("POST", "/api/predict", drawing())
    assert status == 200 and "predictions" in json.loads(body)


def test_decoding_large_images_one_after_another_stays_bounded(large_png, tmp_path):
    """As predict reads its images: each decoded, made 28x28 and let go, in about 200 MB."""
    (tmp_path / "large.png").write_bytes(large_png)
    script = (
        "import sys; from pathlib import Path; from digits.use.photo import open_image, to_mnist\n"
        "[to_mnist(open_image(Path(sys.argv[1]))) for _ in range(4)]\n"
        "print(Path('/proc/self/status').read_text())"
    )
    peak = peak_rss_mb(run([sys.executable, "-c", script, str(tmp_path / "large.png")], ROOT).stdout)
    # Python with NumPy, SciPy and Pillow is about 80 MB; the 40-megapixel RGB image itself, 120 MB.
    assert peak < 350  # 550 MB when the whole image went through float32 steps


def test_an_upload_past_the_queue_gets_a_503_in_json(model, large_png):
    from digits.use.serve import Gate, create_app

    with InProcess(create_app(model, Gate(decoders=1, queue=1))) as server:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(server.request, "POST", "/api/predict", large_png)
            time.sleep(0.3)  # the large upload takes over a second to decode
            status, headers, body = server.request("POST", "/api/predict", drawing())
            assert status == 503 and headers["content-type"] == "application/json"
            assert json.loads(body)["error"].startswith("busy: 1 images are being read; try again")
            assert first.result()[0] == 200
        assert server.request("POST", "/api/predict", drawing())[0] == 200


def encoded(kind: str, **options) -> bytes:
    """The drawing saved as ``kind``."""
    out = io.BytesIO()
    Image.open(io.BytesIO(drawing())).convert("RGB").save(out, kind, **options)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "MPO"])
def test_photo_scan_and_drawing_formats_are_read(served, kind):
    status, _, body = served.request("POST", "/api/predict", encoded(kind))
    assert status == 200 and "predictions" in json.loads(body)


@pytest.mark.parametrize("kind", ["EPS", "PPM", "ICO", "TGA", "PCX", "SGI", "QOI", "IM"])
def test_other_formats_are_refused_by_content_in_one_line(served, kind, tmp_path):
    content = encoded(kind)
    status, _, body = served.request("POST", "/api/predict", content)
    message = "not an image this tool can read; give a PNG, JPEG, TIFF, WebP, BMP or GIF image"
    assert status == 400 and json.loads(body) == {"error": f"upload: {message}"}
    named = tmp_path / "digit.png"  # the name does not matter, the content does
    named.write_bytes(content)
    result = run([sys.executable, "-m", "digits.use.predict", str(named)], ROOT, check=False)
    assert result.returncode == 1 and result.stderr == f"predict: error: {named}: {message}\n"


def test_only_the_servers_own_host_names_are_answered(served):
    for name in ("127.0.0.1", "localhost"):
        assert served.request("GET", "/api/status", Host=f"{name}:{served.port}")[0] == 200
    # DNS rebinding: another site's name pointed at 127.0.0.1, so its page can read the answers.
    for path in ("/api/status", "/api/status/", "/"):
        status, headers, body = served.request("GET", path, Host="evil.example")
        assert status == 400 and "location" not in headers
        assert json.loads(body)["error"].startswith("unknown host 'evil.example': this server answers to ")
    # No redirect built from the Host header, even for a trusted one.
    status, headers, _ = served.request("GET", "/api/status/", Host=f"localhost:{served.port}")
    assert status == 404 and "location" not in headers


def test_a_post_from_another_site_is_refused(served):
    # A "simple" cross-site request: no preflight, so only the server can stop it.
    status, _, body = served.request(
        "POST", "/api/predict", drawing(), Origin="https://evil.example", Content_Type="text/plain"
    )
    assert status == 403 and json.loads(body)["error"].startswith(
        "cross-site request from https://evil.example"
    )
    own = f"http://127.0.0.1:{served.port}"
    assert served.request("POST", "/api/predict", drawing(), Origin=own)[0] == 200


def test_the_status_shows_no_absolute_path(served, model):
    status = json.loads(served.request("GET", "/api/status")[2])
    assert (
        status["ready"] is True and status["model"] == "model.keras" and str(model.parent) not in str(status)
    )


def test_the_host_given_to_serve_is_answered_too(model):
    from starlette.testclient import TestClient

    from digits.use.serve import create_app

    with TestClient(create_app(model, host="digits.example"), base_url="http://digits.example") as client:
        assert client.get("/api/status").json()["ready"] is True


def crafted(good: Path, dest: Path, module: str = "os", class_name: str = "system") -> Path:
    """``good`` with its config.json naming an arbitrary class to build the model from."""
    with zipfile.ZipFile(good) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    config.update(module=module, class_name=class_name, config={"command": "touch pwned"})
    parts["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(dest, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return dest


CRAFTED = (
    "not a readable Keras model (Could not locate class 'system'); give a model trained by this pipeline"
)


def test_a_crafted_model_is_refused_by_predict_in_one_line(model, tmp_path):
    bad = crafted(model, tmp_path / "model.keras")
    (tmp_path / "seven.png").write_bytes(drawing())
    command = [sys.executable, "-m", "digits.use.predict", "seven.png", "--model", str(bad)]
    result = run(command, tmp_path, check=False)
    assert result.returncode == 1 and result.stdout == "" and not (tmp_path / "pwned").exists()
    assert result.stderr.splitlines()[-1:] == [f"predict: error: {bad}: {CRAFTED} (dvc repro)"]
    assert "Traceback" not in result.stderr


def test_a_crafted_model_stops_the_server_at_start_up_in_one_line(model, tmp_path):
    bad = crafted(model, tmp_path / "model.keras")
    command = [sys.executable, "-m", "digits.use.serve", "--port", str(free_port()), "--model", str(bad)]
    result = run(command, tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1:] == [f"serve: error: {bad}: {CRAFTED} (dvc repro)"]


def test_a_crafted_model_appearing_while_the_server_runs_is_a_503(model, tmp_path):
    from digits.use.serve import create_app

    path = tmp_path / "model.keras"
    with InProcess(create_app(path)) as server:
        assert json.loads(server.request("GET", "/api/status")[2])["ready"] is False
        crafted(model, path)
        status = json.loads(server.request("GET", "/api/status")[2])
        assert status == {
            "ready": False,
            "model": "model.keras",
            "message": f"model.keras: {CRAFTED} (dvc repro)",
            "trained": None,
        }
        code, headers, body = server.request("POST", "/api/predict", drawing())
        assert code == 503 and json.loads(body) == {"error": f"model.keras: {CRAFTED} (dvc repro)"}


def test_an_unexpected_error_is_a_json_503_not_a_500(model, monkeypatch):
    from digits.use import serve

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(serve, "to_mnist", broken)
    with InProcess(serve.create_app(model)) as server:
        code, headers, body = server.request("POST", "/api/predict", drawing())
    assert code == 503 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "internal error (RuntimeError); see the server's log, then try again"
    }


def test_advice_for_a_model_the_user_named_fits_that_file(model, tmp_path):
    import keras

    from digits.core.errors import DataError
    from digits.use.classifier import Classifier

    def refusal(path: Path) -> str:
        with pytest.raises(DataError) as error:
            Classifier.load(path)
        return str(error.value)

    fix = "give a model trained by this pipeline (dvc repro)"
    readme = ROOT / "README.md"
    assert (
        refusal(readme)
        == f"{readme}: not a readable Keras model (File format not supported: filepath={readme}); {fix}"
    )
    assert (
        refusal(tmp_path / "typo.keras")
        == f"{tmp_path / 'typo.keras'}: no such file; check the path given to --model"
    )
    cut = tmp_path / "cut.keras"
    cut.write_bytes(model.read_bytes()[:5000])
    assert refusal(cut).startswith(
        f"{cut}: not a readable Keras model (not a zip archive, as .keras files are"
    )
    first, second = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    joined = keras.layers.Flatten()(keras.layers.Add()([first, second]))
    two = tmp_path / "two.keras"
    keras.Model([first, second], keras.layers.Dense(10, activation="softmax")(joined)).save(two)
    assert refusal(two) == f"{two}: not a model with one input and one output; {fix}"


def test_a_wrong_method_says_which_are_allowed(served):
    status, headers, body = served.request("GET", "/api/predict")
    assert (
        status == 405 and headers["allow"] == "POST" and json.loads(body) == {"error": "Method Not Allowed"}
    )


def test_responses_are_not_sniffed_framed_or_scripted_from_elsewhere(served):
    status, headers, page = served.request("GET", "/")
    assert status == 200 and headers["x-content-type-options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"
    (script,) = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    assert policy["script-src"] == f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
    assert served.request("GET", "/api/status")[1]["x-content-type-options"] == "nosniff"


def test_a_connection_that_never_sends_its_request_is_closed(served):
    from digits.use.serve import HEAD_TIMEOUT

    with socket.create_connection((HOST, served.port), timeout=HEAD_TIMEOUT + 10) as slow:
        slow.sendall(f"POST /api/predict HTTP/1.1\r\nHost: {HOST}\r\n".encode())  # ... and no more
        start = time.monotonic()
        assert slow.recv(100) == b""  # closed by the server
        assert time.monotonic() - start < HEAD_TIMEOUT + 5


def test_a_form_upload_is_told_to_send_the_image_itself(served):
    form = (
        b"--x\r\nContent-Disposition: form-data; name=file; filename=seven.png\r\n\r\n"
        + drawing()
        + b"\r\n--x--\r\n"
    )
    status, _, body = served.request(
        "POST", "/api/predict", form, Content_Type="multipart/form-data; boundary=x"
    )
    assert (
        status == 400
        and "request body (curl --data-binary @seven.png), not a form" in json.loads(body)["error"]
    )


def test_a_client_leaving_mid_upload_logs_no_traceback(model, caplog):
    from digits.use.serve import create_app

    with InProcess(create_app(model)) as server:
        with socket.create_connection((HOST, server.port)) as leaving:
            head = f"POST /api/predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n"
            leaving.sendall(head.encode() + drawing()[:500])
        time.sleep(0.5)
        assert server.request("POST", "/api/predict", drawing())[0] == 200
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []


def damaged_tiff(compression: str) -> bytes:
    """The drawing as a TIFF that libtiff decodes (``compression``), its image data scrambled."""
    data = bytearray(encoded("TIFF", compression=compression))
    tags = int.from_bytes(data[4:8], "little")  # Pillow writes the strips first, then the tags
    for at in range(16, tags):
        data[at] ^= 0x5A
    return bytes(data)


# What libtiff says of each, in place of Pillow's "decoder error -2".
LIBTIFF_SAYS = {
    "tiff_deflate": "Decoding error at scanline 0, invalid code lengths set",
    "tiff_lzw": "Using code not yet in table",
    "jpeg": "Bogus marker length",
}


@pytest.mark.parametrize("compression", LIBTIFF_SAYS)
def test_a_damaged_tiff_is_refused_in_one_line_and_libtiff_writes_nothing(
    model, compression, capfd, tmp_path
):
    from digits.use.serve import create_app

    message = f"damaged image ({LIBTIFF_SAYS[compression]}); give a complete PNG or JPEG"
    with InProcess(create_app(model)) as server:
        capfd.readouterr()
        status, _, body = server.request("POST", "/api/predict", damaged_tiff(compression))
        assert capfd.readouterr().err == ""  # the server's stderr, where libtiff wrote
        assert status == 400 and json.loads(body) == {"error": f"upload: {message}"}
        assert server.request("POST", "/api/predict", drawing())[0] == 200
    image = tmp_path / "scan.tif"
    image.write_bytes(damaged_tiff(compression))
    command = [sys.executable, "-m", "digits.use.predict", str(image), "--model", str(model)]
    result = run(command, ROOT, check=False)
    assert result.returncode == 1 and result.stderr == f"predict: error: {image}: {message}\n"


def test_predict_escapes_file_names_in_its_lines(model, tmp_path, capsys):
    from digits.use.predict import main

    tricky = tmp_path / "seven\n\u202egnp.png"
    tricky.write_bytes(drawing())
    main([str(tricky), "--model", str(model)])
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{tmp_path}/seven\\n\\u202egnp.png: ")
    main([str(tricky), "--json", "--model", str(model)])
    assert json.loads(capsys.readouterr().out)["image"] == str(tricky)  # JSON escapes by itself


def test_predict_stopped_says_only_that(model, tmp_path, monkeypatch):
    from digits.use import predict

    def stopped(path):
        raise KeyboardInterrupt  # what SIGTERM raises (digits.core.cli)

    (tmp_path / "seven.png").write_bytes(drawing())
    monkeypatch.setattr(predict.Classifier, "load", stopped)
    with pytest.raises(SystemExit, match="^predict: interrupted$"):
        predict.main([str(tmp_path / "seven.png"), "--model", str(model)])


def test_a_server_on_every_interface_answers_to_this_machines_names():
    from digits.use.serve import LOCAL, names

    assert names("127.0.0.1") == set(LOCAL)
    assert {*LOCAL, "0.0.0.0", socket.gethostname().lower()} <= names("0.0.0.0")
