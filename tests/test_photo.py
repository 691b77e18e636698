"""The preprocessing of predict and the web page: photos and scans -> MNIST-style 28x28 digits."""

import copy
import io
import struct
import zlib

import numpy as np
import pytest
from conftest import needs_full_mnist
from PIL import Image
from trained import accuracy, mnist_or_sample, mnist_split, model_file

from digits.core.errors import DataError
from digits.use.classifier import Classifier
from digits.use.corpus import KINDS, dark_frame, lighting, on_desk, photos, sheet
from digits.use.photo import (
    MAX_PIXELS,
    is_paper,
    open_image,
    surroundings,
    to_grayscale,
    to_mnist,
    working_copy,
)

# EXIF orientation -> how a camera stores the upright picture under that tag.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Classifier:
    return Classifier.load(model_file(tmp_path_factory))


@pytest.fixture(scope="module")
def test_split():
    """300 MNIST test digits, or the sample's held-out digits without the full files."""
    split = mnist_or_sample("test")
    return split.images[:300], split.labels[:300]


def encode(image: Image.Image, kind: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 digits: 1 for the same picture."""
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def page(digit: np.ndarray, seed: int = 0) -> np.ndarray:
    """A digit written on a 600x450 sheet: float RGB."""
    return sheet(np.random.default_rng(seed), digit, (600, 450), (0.5, 0.7))


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
        "light_on_dark_280px": Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC),
        "dark_on_light_200px": dark_on_light,
        "off_centre_rgb": off_centre.convert("RGB"),
        "rgba_transparent": rgba,
    }


def test_transformed_test_digits_are_classified_as_well_as_the_originals(classifier, test_split):
    images, labels = test_split
    baseline = accuracy(classifier, images / 255, labels)
    assert baseline > 0.9
    for name in variants(images[0]):
        digits = np.stack([to_mnist(variants(image)[name]) for image in images])
        assert digits.shape == (300, 28, 28) and digits.max() == pytest.approx(1)
        read = accuracy(classifier, digits, labels)
        assert read >= baseline - 0.03, (name, read, baseline)


def test_light_and_dark_ink_are_told_apart(test_split):
    images, _ = test_split
    light = [is_paper(*background(Image.fromarray(d))) for d in images[:100]]
    dark = [is_paper(*background(Image.fromarray(255 - d))) for d in images[:100]]
    assert sum(light) <= 2 and sum(dark) == 100  # MNIST's own images are light ink on black


def background(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """A picture's working copy and its surroundings, as ``ink_map`` gives them to ``is_paper``."""
    gray = working_copy(to_grayscale(image))
    return gray, surroundings(gray)


@pytest.mark.parametrize("orientation", [1, *STORED])
def test_exif_orientation_is_honoured(test_split, orientation):
    upright = Image.fromarray(np.uint8(page(test_split[0][0]) * 255))
    stored = upright.transpose(STORED[orientation]) if orientation in STORED else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    read = to_mnist(open_image(encode(stored, exif=exif)))
    np.testing.assert_array_equal(read, to_mnist(upright))


def test_a_sheet_on_a_dark_desk_or_in_a_dark_frame_is_read_as_the_page_alone(test_split):
    rng = np.random.default_rng(1)
    for digit in test_split[0][:10]:
        # The sheet on the desk is turned by up to 12 degrees, and so is the digit.
        for surround in (lambda r, paper: on_desk(r, paper, (900, 700), (0.5, 0.6)), dark_frame):
            # The same picture without the digit (the same draws): the difference is the ink
            # alone, where it lies in the picture. The digit read must be that digit, read alone:
            # 0.99999 here, where a crop that keeps a 3-pixel strip of the desk scores 0.54 to 0.81.
            blank_rng = copy.deepcopy(rng)
            picture = surround(rng, page(digit))
            ink = (surround(blank_rng, page(np.zeros_like(digit))) - picture).mean(axis=2)
            expected = to_mnist(Image.fromarray(np.uint8(np.round(ink / ink.max() * 255))))
            image = Image.fromarray(np.uint8(picture * 255))
            assert is_paper(*background(image))
            assert similarity(to_mnist(image), expected) > 0.99


def test_uneven_lighting_does_not_change_the_digit(test_split):
    rng = np.random.default_rng(2)
    for digit in test_split[0][:10]:
        plain = page(digit)
        shaded = lighting(rng, plain, (0.3, 0.3))  # the far side gets 30% of the light
        expected = to_mnist(Image.fromarray(np.uint8(plain * 255)))
        assert similarity(to_mnist(Image.fromarray(np.uint8(shaded * 255))), expected) > 0.9


@pytest.mark.parametrize("top", [65535, 4095])  # full 16-bit, and a 12-bit scanner's range
@pytest.mark.parametrize("kind", ["PNG", "TIFF"])
def test_16_bit_scans_are_read(test_split, top, kind):
    gray = page(test_split[0][0]).mean(axis=2)
    image = Image.fromarray(np.uint16(np.round(gray * top)))
    read = to_mnist(open_image(encode(image, kind)))
    assert similarity(read, to_mnist(Image.fromarray(np.uint8(np.round(gray * 255))))) > 0.99


@pytest.mark.parametrize(
    "mode, kind",
    [
        ("1", "PNG"),  # a bilevel scan, thresholded without dithering
        ("L", "JPEG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("RGB", "JPEG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("LAB", "TIFF"),
        ("I", "TIFF"),
        ("F", "TIFF"),
    ],
)
def test_every_image_mode_is_converted(test_split, mode, kind):
    rgb = Image.fromarray(np.uint8(page(test_split[0][1]) * 255))
    converted = rgb.convert(mode, dither=Image.Dither.NONE) if mode == "1" else rgb.convert(mode)
    # 1 and P keep fewer tones than the photo (how much of it depends on the digit): what must
    # come out is the digit of the picture the file holds.
    expected = to_mnist(converted.convert("RGB") if mode in ("1", "P") else rgb)
    image = open_image(encode(converted, kind))
    assert image.mode == mode
    assert similarity(to_mnist(image), expected) > 0.95


def test_a_mode_that_cannot_be_converted_is_refused_in_one_line():
    with pytest.raises(DataError, match=r"^scan.tif: images in Pillow mode La are not supported"):
        to_grayscale(Image.new("La", (50, 50)), "scan.tif")


def test_a_digit_is_centred_by_mass_within_20x20():
    block = np.zeros((300, 400), np.uint8)
    block[7:107, 5:65] = 255
    digit = to_mnist(Image.fromarray(block))
    rows, cols = np.flatnonzero(digit.any(axis=1) > 0), np.flatnonzero(digit.any(axis=0) > 0)
    assert len(rows) == 20 and len(cols) == 12  # longest side 20, aspect kept
    ys, xs = np.indices(digit.shape)
    assert abs((ys * digit).sum() / digit.sum() - 14) <= 1
    assert abs((xs * digit).sum() / digit.sum() - 14) <= 1


def test_specks_and_marks_at_the_edge_are_not_the_digit(test_split):
    plain = Image.fromarray(np.uint8(page(test_split[0][2]) * 255)).convert("L")
    expected = to_mnist(plain)
    marked = np.asarray(plain).copy()
    marked[:, :6] = 20  # a shadow along the left edge
    marked[30:33, 300:303] = 0  # a speck of dust
    assert similarity(to_mnist(Image.fromarray(marked)), expected) > 0.98


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
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        open_image(path)
    with pytest.raises(DataError, match=f"^upload: {message}"):
        open_image(content, "upload")


def test_blank_and_missing_images(tmp_path):
    with pytest.raises(DataError, match="blank image, no digit found"):
        to_mnist(Image.new("RGB", (50, 50), "white"))
    shaded = lighting(np.random.default_rng(0), np.full((300, 400, 3), 0.9, np.float32))
    with pytest.raises(DataError, match="blank image, no digit found"):  # shading alone is no digit
        to_mnist(Image.fromarray(np.uint8(shaded * 255)))
    with pytest.raises(DataError, match="no such file"):
        open_image(tmp_path / "nothing.png")


def test_the_corpus_is_reproducible(test_split):
    images, labels = test_split[0][:2], test_split[1][:2]
    kinds = ("exif", "16bit")
    first = list(photos(images, labels, kinds, seed=3))
    assert [(p.kind, p.label) for p in first] == [(k, y) for k in kinds for y in labels]
    assert all(p.name.startswith(f"{p.kind}-{i % 2:04d}-{p.label}.") for i, p in enumerate(first))
    assert first == list(photos(images, labels, kinds, seed=3))
    assert [p.data for p in first] != [p.data for p in photos(images, labels, kinds, seed=4)]


@needs_full_mnist
def test_photos_and_scans_of_test_digits_are_read_correctly(classifier):
    """The photo-like corpus on a small scale: every kind, 4000x3000 photos included."""
    images, labels = mnist_split("test")
    chosen = np.random.default_rng(0).choice(len(images), 24, replace=False)
    images, labels = images[chosen], labels[chosen]
    clean = accuracy(classifier, images / 255, labels)
    read = {}
    for kind in KINDS:
        few = 8 if kind in ("large", "phone") else len(images)  # 12-megapixel photos take time to make
        corpus = photos(images[:few], labels[:few], (kind,))
        digits = np.stack([to_mnist(open_image(p.data, p.name), p.name) for p in corpus])
        read[kind] = accuracy(classifier, digits, labels[:few])
    assert np.mean(list(read.values())) >= clean - 0.05, (read, clean)
    assert min(read.values()) >= 0.85, read
