import json
import struct
import zlib

import numpy as np
import pytest
from conftest import make_params
from PIL import Image

from digits.cv import final_task
from digits.errors import DataError
from digits.predict import MAX_PIXELS, main, open_image, predict, to_mnist
from digits.prepared import prepare
from digits.sources import from_sample
from stages.train import run_tasks


@pytest.fixture(scope="module")
def model_and_digits(tmp_path_factory):
    """A model trained for 2 epochs on the 4,000 sample digits, and the 1,000 held-out ones."""
    from digits.model import load_model

    sample = from_sample()
    x, y = prepare(sample["train"])
    [result] = run_tasks([final_task(len(x), 1)], x, y, make_params(epochs=2, cv__n_jobs=1))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    path.write_bytes(result.model)
    return load_model(path), path, sample["test"]


def variants(digit: np.ndarray) -> dict[str, Image.Image]:
    """A 28x28 MNIST digit as a person might photograph or draw it."""
    dark_on_light = Image.fromarray(255 - digit).resize((200, 200), Image.Resampling.BICUBIC)
    off_centre = Image.new("L", (320, 260), 255)
    off_centre.paste(dark_on_light, (10, 50))
    rgba = Image.new("RGBA", (260, 260), (0, 0, 0, 0))  # transparent paper
    ink = Image.fromarray(digit).resize((200, 200), Image.Resampling.BICUBIC)
    rgba.paste(Image.new("RGBA", (200, 200), (20, 20, 120, 255)), (40, 20), mask=ink)
    return {
        "light_on_dark": Image.fromarray(digit),
        "dark_on_light_200px": dark_on_light,
        "off_centre_rgb": off_centre.convert("RGB"),
        "rgba_transparent": rgba,
    }


def test_transformed_test_digits_are_classified_as_well_as_the_originals(model_and_digits):
    model, _, test = model_and_digits
    images, labels = test.images[:300], test.labels[:300]
    baseline = (np.argmax(model.predict(prepare(test)[0][:300], verbose=0), axis=1) == labels).mean()
    assert baseline > 0.85
    for name in variants(images[0]):
        digits = np.stack([to_mnist(variants(image)[name]) for image in images])
        assert digits.shape == (300, 28, 28) and digits.max() == pytest.approx(1)
        accuracy = np.mean(
            [g[0][0] == label for g, label in zip(predict(model, digits, 1), labels, strict=True)]
        )
        assert accuracy >= baseline - 0.05, (name, accuracy, baseline)


def test_a_digit_is_centred_by_mass_within_20x20():
    square = np.zeros((100, 60), np.uint8)
    square[:, :] = 255
    image = Image.new("L", (400, 300), 0)
    image.paste(Image.fromarray(square), (5, 7))
    digit = to_mnist(image)
    rows, cols = np.flatnonzero(digit.any(axis=1) > 0), np.flatnonzero(digit.any(axis=0) > 0)
    assert len(rows) == 20 and len(cols) == 12  # longest side 20, aspect kept
    ys, xs = np.indices(digit.shape)
    assert abs((ys * digit).sum() / digit.sum() - 14) <= 1
    assert abs((xs * digit).sum() / digit.sum() - 14) <= 1


def test_cli_prints_top_k_and_json(model_and_digits, tmp_path, capsys):
    _, model_path, test = model_and_digits
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        variants(test.images[i])["dark_on_light_200px"].save(paths[-1])
    main([*map(str, paths), "--top", "3", "--model", str(model_path)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{paths[0]}: ") and lines[0].count("%") == 3
    main([str(paths[0]), "--json", "--top", "2", "--model", str(model_path)])
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(paths[0]) and len(record["predictions"]) == 2
    probabilities = [p["probability"] for p in record["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` pixels, with no real pixel data behind the claim."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"not deflate data")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello, not an image", "not an image this tool can read"),
        (png_header_only(8000, 6000), f"8000x6000 pixels is over the limit of {MAX_PIXELS:,}"),
        (png_header_only(100_000, 100_000), "too many pixels to decode safely"),
        (png_header_only(20, 20), "damaged image"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "input.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        open_image(path)


def test_blank_and_missing_images(tmp_path):
    with pytest.raises(DataError, match="blank image, no digit found"):
        to_mnist(Image.new("RGB", (50, 50), "white"))
    with pytest.raises(DataError, match="no such file"):
        open_image(tmp_path / "nothing.png")


def test_missing_model_says_to_run_dvc_repro(tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(np.eye(28, dtype=np.uint8) * 255).save(path)
    with pytest.raises(DataError, match="missing; restore it from DVC.s cache with `dvc checkout`"):
        main([str(path), "--model", str(tmp_path / "model.keras")])
