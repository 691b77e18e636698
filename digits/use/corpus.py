"""Photo-like images of MNIST digits: what ``predict`` meets in real use, with known labels.

Each 28x28 digit is drawn in ink on a sheet of paper and then photographed or scanned in
one of these ways (``KINDS``):

``exif``
    a portrait phone photo stored sideways or upside down, with its EXIF orientation tag;
``dark_surround``
    a sheet lying on a dark desk, tilted, or a scan with a dark frame;
``gradient``
    light falling off across the page;
``blur_jpeg``
    out of focus, sensor noise, JPEG at phone quality;
``large``
    a 4000x3000 (or 3000x4000) photo with the digit somewhere in it;
``16bit``
    a 16-bit grayscale scan (PNG or TIFF; full 16-bit or 12-bit values);
``phone``
    all of these at once: a 4000x3000 photo of a tilted sheet on a desk, unevenly lit,
    blurred, noisy, JPEG, stored sideways with its orientation tag.

Everything is drawn from a seeded generator: the same seed gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("exif", "dark_surround", "gradient", "blur_jpeg", "large", "16bit", "phone")
LARGE = (4000, 3000)
ORIENTATION = 0x0112  # the EXIF tag
# EXIF orientation -> how the upright picture is stored so that a viewer honouring the tag
# shows it upright (6: rotate 90 clockwise to view, 8: 90 anticlockwise, 3: 180).
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
INKS = ((0.08, 0.08, 0.10), (0.10, 0.13, 0.42), (0.35, 0.35, 0.37))  # black pen, blue pen, pencil


class Photo(NamedTuple):
    """One image file of the corpus: its kind, the digit it shows, a file name and its bytes."""

    kind: str
    label: int
    name: str
    data: bytes


Rng = np.random.Generator


def sheet(rng: Rng, digit: np.ndarray, size: tuple[int, int], fill: tuple[float, float]) -> np.ndarray:
    """A sheet of paper ``size`` (width, height) with ``digit`` in ink on it: float32 RGB [H, W, 3] in 0..1.

    The digit's 28x28 field spans ``fill`` (a range, at most 0.8) of the sheet's shorter side,
    somewhere on it but a margin of a tenth of that side clear of its edges.
    """
    width, height = size
    side = round(rng.uniform(*fill) * min(size))
    margin = min(size) // 10
    alpha = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32)
    alpha = np.clip(alpha / 255, 0, 1)[..., np.newaxis]
    paper = np.full((height, width, 3), rng.uniform(0.8, 0.95), np.float32)
    paper *= np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.9, 1.0)], np.float32)  # warm or white
    ink = np.array(INKS[rng.integers(len(INKS))], np.float32)
    top = rng.integers(margin, height - side - margin + 1)
    left = rng.integers(margin, width - side - margin + 1)
    area = paper[top : top + side, left : left + side]
    area[:] = area * (1 - alpha) + ink * alpha
    return paper


def lighting(rng: Rng, image: np.ndarray, darkest: tuple[float, float] = (0.3, 0.5)) -> np.ndarray:
    """``image`` lit unevenly: brightness falls off linearly in a random direction."""
    height, width = image.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    light = 1 - (1 - rng.uniform(*darkest)) * ramp
    return image * light[..., np.newaxis]


def to_8bit(image: np.ndarray, rng: Rng | None = None, noise: float = 0.0) -> Image.Image:
    """Float RGB in 0..1 -> an 8-bit RGB image, with Gaussian sensor noise of ``noise`` if given."""
    if rng is not None and noise:
        image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return Image.fromarray(np.uint8(np.clip(image, 0, 1) * 255 + 0.5))


def encode(image: Image.Image, kind: str, quality: int = 90, orientation: int = 1) -> bytes:
    """``image`` as file bytes: JPEG at ``quality`` with an EXIF orientation, or ``kind`` ('png', 'tiff')."""
    out = io.BytesIO()
    if kind == "jpeg":
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        image.save(out, "JPEG", quality=quality, exif=exif)
    else:
        image.save(out, kind.upper())
    return out.getvalue()


def on_desk(rng: Rng, paper: np.ndarray, size: tuple[int, int], cover: tuple[float, float]) -> np.ndarray:
    """``paper`` tilted a little, lying on a dark desk ``size`` (width, height), covering ``cover`` of it."""
    width, height = size
    scale = rng.uniform(*cover) * min(width / paper.shape[1], height / paper.shape[0])
    sheet_size = (round(paper.shape[1] * scale), round(paper.shape[0] * scale))
    sheet_image = to_8bit(paper).resize(sheet_size, Image.Resampling.BILINEAR)
    angle = rng.uniform(-12, 12)
    mask = Image.new("L", sheet_size, 255).rotate(angle, Image.Resampling.BILINEAR, expand=True)
    sheet_image = sheet_image.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    # A dark desk with a soft grain.
    tone = rng.uniform(0.05, 0.25)
    grain = rng.normal(0, 0.03, (height // 16 + 1, width // 16 + 1)).astype(np.float32)
    grain = np.asarray(Image.fromarray(grain).resize(size, Image.Resampling.BICUBIC))
    desk = np.clip(tone + grain, 0, 1)[..., np.newaxis] * np.array([1.0, 0.85, 0.7], np.float32)
    desk_image = to_8bit(desk)
    left = rng.integers(0, max(1, width - sheet_image.width + 1))
    top = rng.integers(0, max(1, height - sheet_image.height + 1))
    desk_image.paste(sheet_image, (int(left), int(top)), mask)
    return np.asarray(desk_image, np.float32) / 255


def dark_frame(rng: Rng, image: np.ndarray) -> np.ndarray:
    """A scan with a dark frame: a band of a few percent on each side, as a scanner lid leaves."""
    height, width = image.shape[:2]
    framed = image.copy()
    shade = rng.uniform(0.0, 0.12)
    top, bottom = (round(rng.uniform(0.02, 0.08) * height) for _ in range(2))
    left, right = (round(rng.uniform(0.02, 0.08) * width) for _ in range(2))
    framed[:top] = framed[height - bottom :] = shade
    framed[:, :left] = framed[:, width - right :] = shade
    return framed


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """``image`` out of focus: a Gaussian blur of ``radius`` pixels."""
    blurred = to_8bit(image).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, np.float32) / 255


def portrait(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    upright = to_8bit(sheet(rng, digit, (900, 1200), (0.3, 0.7)), rng, 0.01)
    orientation = int(rng.choice(list(STORED)))
    return encode(upright.transpose(STORED[orientation]), "jpeg", 90, orientation), "jpg"


def surround(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        photo = on_desk(rng, sheet(rng, digit, (800, 1000), (0.4, 0.8)), (1200, 900), (0.5, 0.8))
        return encode(to_8bit(photo, rng, 0.01), "jpeg", 90), "jpg"
    scan = dark_frame(rng, sheet(rng, digit, (850, 1100), (0.3, 0.7)))
    return encode(to_8bit(scan).convert("L"), "png"), "png"


def gradient(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    page = lighting(rng, sheet(rng, digit, (1000, 750), (0.3, 0.8)))
    return encode(to_8bit(page, rng, 0.01), "jpeg", 90), "jpg"


def blurred(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    page = sheet(rng, digit, (800, 600), (0.3, 0.8))
    page = blur(page, rng.uniform(1.5, 4.0))
    return encode(to_8bit(page, rng, 0.02), "jpeg", int(rng.integers(60, 81))), "jpg"


def large(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    # Drawn at half size and scaled up: a 12-megapixel photo is as smooth as that anyway.
    size = LARGE if rng.random() < 0.5 else LARGE[::-1]
    half = sheet(rng, digit, (size[0] // 2, size[1] // 2), (0.15, 0.5))
    image = to_8bit(half, rng, 0.01).resize(size, Image.Resampling.BICUBIC)
    return encode(image, "jpeg", 85), "jpg"


def sixteen_bit(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    page = sheet(rng, digit, (600, 800), (0.3, 0.8)).mean(axis=2)
    top = 65535 if rng.random() < 0.5 else 4095  # full 16-bit, or a 12-bit scanner's values
    samples = np.clip(page + rng.normal(0, 0.005, page.shape), 0, 1) * top
    image = Image.fromarray(samples.astype(np.uint16))
    if rng.random() < 0.5:
        return encode(image, "png"), "png"
    return encode(image, "tiff"), "tif"


def phone(rng: Rng, digit: np.ndarray) -> tuple[bytes, str]:
    width, height = LARGE[0] // 2, LARGE[1] // 2
    page = sheet(rng, digit, (800, 1000), (0.4, 0.8))
    photo = lighting(rng, on_desk(rng, page, (width, height), (0.5, 0.8)), (0.4, 0.6))
    photo = blur(photo, rng.uniform(1.0, 2.0))
    image = to_8bit(photo, rng, 0.02).resize(LARGE, Image.Resampling.BICUBIC)
    orientation = int(rng.choice(list(STORED)))
    return encode(image.transpose(STORED[orientation]), "jpeg", 80, orientation), "jpg"


MAKERS: dict[str, Callable[[Rng, np.ndarray], tuple[bytes, str]]] = {
    "exif": portrait,
    "dark_surround": surround,
    "gradient": gradient,
    "blur_jpeg": blurred,
    "large": large,
    "16bit": sixteen_bit,
    "phone": phone,
}


def photos(
    images: np.ndarray, labels: np.ndarray, kinds: tuple[str, ...] = KINDS, seed: int = 0
) -> Iterator[Photo]:
    """Each of ``images`` (uint8 [N, 28, 28], MNIST-style) as a photo of each kind, with its label."""
    for kind in kinds:
        rng = np.random.default_rng([seed, KINDS.index(kind)])
        for i, (digit, label) in enumerate(zip(images, labels, strict=True)):
            data, extension = MAKERS[kind](rng, digit)
            yield Photo(kind, int(label), f"{kind}-{i:04d}-{label}.{extension}", data)
