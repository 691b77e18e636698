"""The draw-a-digit server: answers, the shared preprocessing, and bad uploads as 4xx JSON."""

import base64
import io
import json
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_params
from PIL import Image
from starlette.testclient import TestClient
from test_photo import encode, png_header_only
from trained import mnist_or_sample, model_file

from digits.core.errors import DataError, PipelineError
from digits.core.files import file_md5, write_json
from digits.use.classifier import Classifier
from digits.use.photo import open_image, to_mnist
from digits.use.provenance import provenance
from digits.use.serve import MAX_UPLOAD, check_port, create_app

LOCAL_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_file(tmp_path_factory)


@pytest.fixture(scope="module")
def client(model):
    # The server answers to its own host names only, not to the test client's "testserver".
    with TestClient(
        create_app(model), base_url=LOCAL_URL
    ) as test_client:  # an unhandled error fails the test
        yield test_client


def drawing() -> bytes:
    """A 7 as the page sends it: black strokes on white, 140x140."""
    from PIL import ImageDraw

    image = Image.new("RGBA", (280, 280), "white")
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill="black", width=20, joint="curve")
    return encode(image.resize((140, 140), Image.Resampling.BILINEAR))


def test_the_page_is_served_and_needs_nothing_from_the_network(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<canvas id="pad"' in page and 'id="mnist"' in page and 'id="clear"' in page
    assert 'type="file"' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no remote font
    assert "@import" not in page


def test_a_drawing_gets_the_top_3_and_the_28x28_the_model_saw(client):
    body = drawing()
    response = client.post("/api/predict", content=body, headers={"content-type": "image/png"})
    assert response.status_code == 200
    answer = response.json()
    assert len(answer["predictions"]) == 3
    probabilities = [p["probability"] for p in answer["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    top = answer["predictions"][0]["digit"]
    assert answer["label"] == (
        f"unsure: {top} or {answer['predictions'][1]['digit']}" if answer["unsure"] else str(top)
    )
    seen = np.frombuffer(base64.b64decode(answer["mnist"]), np.uint8).reshape(28, 28)
    # The very preprocessing of predict: the same 28x28 image.
    np.testing.assert_array_equal(seen, np.uint8(np.round(to_mnist(open_image(body)) * 255)))


def test_a_drawn_7_is_read_as_a_7(client):
    # A test digit whose label is 7, as the page sends a drawing: dark on white, 140x140.
    split = mnist_or_sample("test")
    seven = split.images[np.flatnonzero(split.labels == 7)[0]]
    image = Image.fromarray(255 - seven).resize((140, 140), Image.Resampling.BICUBIC).convert("RGBA")
    response = client.post("/api/predict", content=encode(image), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["predictions"][0]["digit"] == 7


def test_a_photo_upload_is_read_like_predict_reads_it(client):
    upright = Image.new("RGB", (600, 800), (235, 232, 225))
    from PIL import ImageDraw

    ImageDraw.Draw(upright).line([(200, 250), (400, 250), (260, 600)], fill=(20, 20, 60), width=30)
    exif = Image.Exif()
    exif[0x0112] = 6  # a portrait photo stored sideways
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=85, exif=exif)
    response = client.post("/api/predict", content=out.getvalue())
    assert response.status_code == 200
    seen = np.frombuffer(base64.b64decode(response.json()["mnist"]), np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(seen, np.uint8(np.round(to_mnist(open_image(out.getvalue())) * 255)))


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"", 400, "upload: empty file"),
        (b"GIF89a but not really", 400, "upload: not an image this tool can read"),
        (png_header_only(20, 20), 400, "upload: damaged image"),
        (png_header_only(8000, 6000), 400, "upload: 8000x6000 pixels is over the limit"),
        (png_header_only(100_000, 100_000), 400, "upload: too many pixels to decode safely"),
        (encode(Image.new("L", (300, 300), 255)), 400, "upload: blank image, no digit found"),
        (b"\0" * (MAX_UPLOAD + 1), 413, "upload: larger than 16 MB"),
    ],
)
def test_bad_uploads_get_a_4xx_json_error(client, body, status, message):
    response = client.post("/api/predict", content=body)
    assert response.status_code == status
    assert response.json()["error"].startswith(message)


def test_an_upload_without_a_declared_length_is_limited_too(client):
    def chunks():
        for _ in range(MAX_UPLOAD // 2**20 + 2):
            yield b"\0" * 2**20

    response = client.post("/api/predict", content=chunks())
    assert response.status_code == 413 and "larger than" in response.json()["error"]


def test_random_and_damaged_uploads_never_cause_a_server_error(client):
    rng = np.random.default_rng(0)
    good = drawing()
    bodies = [rng.bytes(int(n)) for n in rng.integers(1, 5000, 30)]
    for _ in range(30):  # the drawing with a few bytes changed, or cut short
        mutated = bytearray(good)
        for position in rng.integers(0, len(good), rng.integers(1, 6)):
            mutated[position] = rng.integers(0, 256)
        bodies.append(bytes(mutated[: rng.integers(len(good) // 2, len(good) + 1)]))
    for body in bodies:
        response = client.post("/api/predict", content=body)
        assert response.status_code in (200, 400), response.text
        assert ("predictions" in response.json()) == (response.status_code == 200)


def test_unknown_routes_and_methods_answer_in_json(client):
    assert client.get("/nothing").json() == {"error": "Not Found"}
    response = client.get("/api/predict")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}


def test_without_a_model_the_page_says_to_run_make_run(model, tmp_path):
    path = tmp_path / "models" / "model.keras"
    with TestClient(create_app(path), base_url=LOCAL_URL) as client:
        assert client.get("/").status_code == 200
        status = client.get("/api/status").json()
        assert status["ready"] is False and "run make run" in status["message"]
        response = client.post("/api/predict", content=drawing())
        assert response.status_code == 503 and "run make run" in response.json()["error"]
        # Once the pipeline has made the model, it is loaded without a restart.
        path.parent.mkdir()
        shutil.copy(model, path)
        assert client.get("/api/status").json()["ready"] is True
        assert client.post("/api/predict", content=drawing()).status_code == 200


def test_a_damaged_model_stops_the_start_in_one_line(model, tmp_path):
    damaged = tmp_path / "model.keras"
    damaged.write_bytes(model.read_bytes()[:5000])
    with pytest.raises(DataError, match=f"^{damaged}: not a readable Keras model"):
        create_app(damaged)


def test_a_port_in_use_is_refused_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            PipelineError, match=f"^port {port} is in use; choose another: make serve PORT={port + 1}$"
        ):
            check_port("127.0.0.1", port)


def record(project, model) -> None:
    """``project`` as the pipeline leaves it: the model, the metrics, and dvc.lock recording them."""
    (project / "models").mkdir()
    shutil.copy(model, project / "models" / "model.keras")
    (project / "metrics").mkdir()
    cv = {
        "accuracy_mean": 98.6312,
        "accuracy_std": 0.1291,
        "fold_accuracy": {f"fold_{k}": 98.6 for k in range(5)},
    }
    write_json(project / "metrics/cv.json", cv | {"data": {"source": "mnist", "images": 60000}})
    write_json(
        project / "metrics/test.json", {"accuracy": 98.76, "data": {"source": "mnist", "images": 10000}}
    )

    def outs(*paths):
        return [{"path": path, "md5": file_md5(project / path)} for path in paths]

    lock = {"stages": {"train": {"outs": outs("models/model.keras", "metrics/cv.json")}}}
    lock["stages"]["evaluate"] = {"outs": outs("metrics/test.json")}
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_the_status_says_what_the_model_was_trained_on_from_the_pipelines_records(
    model, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    record(tmp_path, model)
    described = (
        "trained on 60,000 full MNIST images: 5-fold CV 98.63 ± 0.13 %, "
        "test 98.76 % on 10,000 held-out images"
    )
    with TestClient(create_app(Path("models/model.keras")), base_url=LOCAL_URL) as client:
        assert client.get("/api/status").json()["trained"] == described
    assert provenance(Path("models/model.keras")) == described
    shutil.copy(model, tmp_path / "copy.keras")  # the same bytes elsewhere: the same model
    assert provenance(tmp_path / "copy.keras") == described
    # Records that are not this model's say nothing: a run under way, another model
    cv = json.loads(Path("metrics/cv.json").read_text())
    write_json(Path("metrics/cv.json"), cv | {"partial": True})
    assert provenance(Path("models/model.keras")) is None
    write_json(Path("metrics/cv.json"), cv)
    assert provenance(Path("models/model.keras")) == described
    with open("copy.keras", "ab") as f:
        f.write(b"\0")
    assert provenance(Path("copy.keras")) is None


def other_model(path) -> None:
    """An untrained model of the same shape: other answers than the trained one."""
    from digits.training.fit import fresh_model

    fresh_model(make_params(), steps_per_epoch=1, seed=5).save(path)


def test_a_model_replaced_while_serving_is_used_without_a_restart(model, tmp_path):
    path = tmp_path / "model.keras"
    shutil.copy(model, path)
    with TestClient(create_app(path), base_url=LOCAL_URL) as client:
        before = client.post("/api/predict", content=drawing()).json()["predictions"]
        assert before[0]["digit"] == 7
        other_model(tmp_path / "new.keras")
        os.replace(tmp_path / "new.keras", path)  # as DVC and the stages replace a model: whole
        after = client.post("/api/predict", content=drawing()).json()["predictions"]
        expected = Classifier.load(path).classify(
            to_mnist(open_image(drawing(), "drawing"), "drawing")[None]
        )[0]
        assert after[0]["digit"] == expected.ranking[0][0] and after != before
        assert after[0]["probability"] == pytest.approx(expected.ranking[0][1], abs=1e-6)


def test_a_deleted_or_broken_model_turns_the_status_to_not_ready_with_the_reason(model, tmp_path):
    path = tmp_path / "model.keras"
    shutil.copy(model, path)
    with TestClient(create_app(path), base_url=LOCAL_URL) as client:
        assert client.get("/api/status").json()["ready"] is True
        path.unlink()
        status = client.get("/api/status").json()
        assert status["ready"] is False and status["message"].startswith("no trained model yet (")
        path.write_bytes(model.read_bytes()[:5000])  # a copy cut short
        status = client.get("/api/status").json()
        assert status["ready"] is False and "not a readable Keras model" in status["message"]
        response = client.post("/api/predict", content=drawing())
        assert response.status_code == 503 and "not a readable Keras model" in response.json()["error"]
        shutil.copy(model, path)  # and back: ready again, with no restart
        assert client.get("/api/status").json()["ready"] is True
        assert client.post("/api/predict", content=drawing()).json()["predictions"][0]["digit"] == 7
