"""A photo, scan or drawing of one handwritten digit -> the 28x28 digit MNIST would have made of it.

Used by ``python -m digits.use.predict`` and by the draw-a-digit page alike. The steps:

1. Decode, honouring the EXIF orientation of phone photos; grayscale in 0..1 from any
   bit depth (16-bit scans included); transparent areas count as white paper.
2. Look for the digit on a copy at most ``WORK_SIZE`` pixels across. The local background
   is the image with the strokes closed over (a grey-level closing, or an opening for light
   ink), so a lighting gradient, a dark desk around the sheet or a scanner's dark frame are
   all background, not ink. The ink is what differs from that background.
3. Keep the connected strokes that make up the digit, drop specks and marks at the edges.
4. As MNIST did: scale the digit to fit 20x20 keeping its aspect ratio and place it in a
   28x28 field with its centre of mass at the centre; light ink on black, 0..1.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from digits.core.errors import DataError
from digits.use import libtiff

# What a photo, scan or drawing can be, told by content, not by name; never PostScript or EPS,
# which Pillow would hand to Ghostscript. A phone's MPO photo is read as the JPEG it starts with.
FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF")
READABLE = "give a PNG, JPEG, TIFF, WebP, BMP or GIF image"
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; larger is refused before decoding
MIN_CONTRAST = 32 / 255  # less ink contrast than this is a blank image
WORK_SIZE = 512  # the digit is looked for at this size at most: plenty for a 20x20 result
MIN_SIDE = 112  # ... and at least
FIT = 20  # MNIST digits fit in 20x20 ...
SIZE = 28  # ... centred by centre of mass in 28x28
# The background is estimated over windows this fraction of the picture's shorter side:
# wider than any pen stroke, narrow enough to follow uneven lighting.
WINDOW = 1 / 5
# Paper (see is_paper): a light region filling this much of its convex hull, and this many
# times as thick as the dark marks on it, or THICK times if they are strokes at least
# STROKE_ELONGATION times as long as wide.
SHEET_SOLIDITY = 0.8
THICKER = 6
THICK = 2.5
STROKE_ELONGATION = 8
CLEAR_RIM = 0.98  # a picture this light all along its edge is a page ...
SHADE = 0.35  # ... even where it gets only this fraction of the light
EIGHT = np.ones((3, 3), bool)  # pixels touching at a corner are connected
# Stroke cores hold at least this fraction of the digit's strongest ink.
STROKE = 0.35
LEVEL = 75  # percentile of the stroke cores that becomes full ink (1.0)
# Strokes with less ink than this fraction of the digit's main stroke are specks.
SPECK = 0.05


def open_image(source: Path | str | bytes, name: str | None = None) -> Image.Image:
    """Decode an image file (a path, or its bytes) upright, refusing what is not a usable image.

    ``name`` is what error messages call it (default: the path).
    """
    if isinstance(source, bytes):
        name = name or "image"
        empty, stream = not source, io.BytesIO(source)
    else:
        name = name or str(source)
        stream = Path(source)
        empty = stream.is_file() and stream.stat().st_size == 0
    if empty:
        raise DataError(f"{name}: empty file; give a PNG or JPEG image of a digit")
    try:
        image = Image.open(stream, formats=FORMATS)  # reads the header only
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except Image.DecompressionBombError:
        raise DataError(f"{name}: too many pixels to decode safely; crop or shrink the image") from None
    except (UnidentifiedImageError, ValueError, SyntaxError):
        raise DataError(f"{name}: not an image this tool can read; {READABLE}") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{name}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,}; "
            "crop or shrink the image to the digit"
        )
    if width == 0 or height == 0:
        raise DataError(f"{name}: zero-size image; give an image of a digit")
    # JPEG can decode at 1/2, 1/4 or 1/8 scale directly: a 12-megapixel photo in a fraction
    # of the time, and still at least WORK_SIZE across.
    image.draft(image.mode, (WORK_SIZE, WORK_SIZE))
    libtiff.listen()
    libtiff.last_error()  # what an earlier image made it say is not about this one
    try:
        image.load()
        image = shrink(image)
        ImageOps.exif_transpose(image, in_place=True)  # phones store portrait photos sideways
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = libtiff.last_error() or exc  # libtiff's words, not Pillow's "decoder error -2"
        raise DataError(f"{name}: damaged image ({reason}); give a complete PNG or JPEG") from None
    return image


def shrink(image: Image.Image) -> Image.Image:
    """A large decoded image reduced by a whole factor to between ``WORK_SIZE`` and twice that across.

    The digit is looked for at ``WORK_SIZE`` at most anyway; reducing first, in the image's own
    8-bit mode, keeps the float steps that follow small (40 megapixels would take 160 MB each).
    Alpha is premultiplied while reducing, so transparent areas stay paper.
    """
    factor = max(image.size) // WORK_SIZE
    if factor < 2:
        return image
    if image.mode in ("P", "PA"):  # palette indices cannot be averaged: their colours can
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    small = image.reduce(factor)
    small.info["exif"] = image.getexif().tobytes()  # a TIFF's orientation is in its tags, not its info
    return small


def to_grayscale(image: Image.Image, name: str = "image") -> np.ndarray:
    """Grayscale float32 [H, W] in 0..1 from any mode; transparent areas count as white paper."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        # 16- or 32-bit samples: scale by the bit depth the values need (8, 10, 12, 14 or 16
        # bits), so a 12-bit scan stored in 16 bits is not taken for a dark image.
        gray = np.asarray(image, dtype=np.float32)
        if not np.isfinite(gray).all():
            raise DataError(f"{name}: the image holds NaN or infinite values")
        top = float(gray.max())
        if mode == "F" and top <= 1:
            return np.clip(gray, 0, 1)
        depth = next((bits for bits in (8, 10, 12, 14, 16) if top < 2**bits), 32)
        return np.clip(gray / (2**depth - 1), 0, 1)
    if mode == "LAB":
        return np.asarray(image.getchannel("L"), dtype=np.float32) / 255
    transparent = mode in ("RGBA", "LA", "PA", "RGBa") and image.getchannel(mode[-1]).getextrema()[0] < 255
    if transparent or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    try:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255
    except ValueError:
        raise DataError(
            f"{name}: images in Pillow mode {mode} are not supported; save it as an RGB or grayscale PNG"
        ) from None


def working_copy(gray: np.ndarray) -> np.ndarray:
    """``gray`` at the size the digit is looked for at: at most ``WORK_SIZE`` across, and a
    small picture (such as MNIST's own 28x28) enlarged to ``MIN_SIDE``, so that shapes are
    measured at a useful resolution."""
    height, width = gray.shape
    scale = min(WORK_SIZE / max(height, width), max(1.0, MIN_SIDE / min(height, width)))
    if scale == 1:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(gray).resize(size, resample))


def rim(array: np.ndarray) -> np.ndarray:
    """The values along the edge of a 2-D array."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def is_paper(gray: np.ndarray, background: np.ndarray) -> bool:
    """Whether the digit is dark ink on light paper; if not, it is light ink on dark, as in MNIST.

    ``background`` is ``gray`` with dark strokes closed over. A picture that is light all along
    its edge once divided by it (so that shading does not count) is a page. (So is a light
    digit on a mid-grey ground, a known limit: MNIST-like pictures have a black one.) Otherwise, paper
    is a convex light region (a sheet on a dark desk, in a scanner's dark frame) much thicker
    than the dark marks on it, or clearly thicker than marks that are strokes (long and thin,
    unlike the holes of a light digit). The light strokes of a digit are neither.
    """
    # Paper in a shadow down to SHADE of the light is still paper; at least half as bright as
    # its background is not ink.
    flat = gray / np.maximum(background, max(SHADE * float(np.percentile(background, 99)), 1e-6))
    if rim(flat > 0.5).mean() >= CLEAR_RIM:
        return True
    light = gray > otsu(gray)
    labels, count = ndimage.label(light, structure=EIGHT)
    if count == 0:
        return True
    sizes = ndimage.sum_labels(light, labels, np.arange(1, count + 1))
    sheet = ndimage.binary_fill_holes(labels == np.argmax(sizes) + 1)
    if solidity(sheet) < SHEET_SOLIDITY:
        return False
    marks, count = ndimage.label(~light, structure=EIGHT)
    sizes = ndimage.sum_labels(~light, marks, np.arange(count + 1))
    sizes[np.unique(rim(marks))] = 0  # the dark surround, or ink cut by the edge of the picture
    if sizes.max() == 0:
        # No dark mark inside: a page with the digit cut by its edge, or a digit without holes.
        return sheet.mean() >= 0.5
    width = ndimage.distance_transform_edt(marks == np.argmax(sizes)).max()  # half the mark's width
    thickness = ndimage.distance_transform_edt(light).max() / width
    elongation = sizes.max() / width**2  # about 3 for a round hole, 2 * length / width for a stroke
    return thickness >= THICKER or (thickness >= THICK and elongation >= STROKE_ELONGATION)


def solidity(region: np.ndarray) -> float:
    """The fraction of its convex hull that ``region`` (a boolean mask) fills."""
    edge = np.argwhere(region & ~ndimage.binary_erosion(region))
    corners = (edge[:, np.newaxis, :] + np.array([[0, 0], [0, 1], [1, 0], [1, 1]])).reshape(-1, 2)
    try:
        hull = ConvexHull(corners).volume  # in 2-D, the area
    except QhullError:  # a line or a point
        return 1.0
    return float(region.sum() / hull)


def surroundings(gray: np.ndarray, light_ink: bool = False) -> np.ndarray:
    """The local background of each pixel: the picture with dark strokes closed over (a grey-level
    closing), or light ones opened away, over windows ``WINDOW`` of its shorter side.

    The picture is extended past its edges by odd reflection, which continues a lighting
    gradient as it runs, so the background follows it right into the corners.
    """
    side = max(3, round(min(gray.shape) * WINDOW) | 1)
    padded = np.pad(gray, side, mode="reflect", reflect_type="odd")
    operation = ndimage.grey_opening if light_ink else ndimage.grey_closing
    return operation(padded, size=(side, side))[side:-side, side:-side]


def ink_map(gray: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0..1 up to scale: how much it differs from its surroundings."""
    closed = surroundings(gray)
    if not is_paper(gray, closed):
        return gray - surroundings(gray, light_ink=True)
    # Relative to the paper's brightness, so a digit in a shadow is as dark as in the light;
    # with a floor, so the grain of a dark desk is not magnified into ink.
    paper = np.maximum(closed, SHADE * float(np.percentile(closed, 99)))
    return (closed - gray) / np.maximum(paper, 1e-6)


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the cut that best separates ``values`` into two classes."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    step = (high - low) / bins
    counts = np.bincount(np.minimum((values.ravel() - low) / step, bins - 1).astype(np.intp), minlength=bins)
    centres = low + step * (np.arange(bins) + 0.5)
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * weight - mass * total) ** 2 / (weight * (total - weight))
    return float(centres[np.nanargmax(between[:-1])])


def find_digit(ink: np.ndarray, name: str = "image") -> np.ndarray:
    """The digit's strokes cut out of ``ink``: float32 0..1, cropped to the digit, nothing else."""
    faint = ink > MIN_CONTRAST / 2
    labels, count = ndimage.label(faint, structure=EIGHT)
    edge = np.unique(rim(labels))
    inside = np.ones(count + 1, bool)
    inside[edge] = inside[0] = False
    # Marks cut by the edge of the picture (a scanner's frame, a shadow, the desk) are not the
    # digit, unless there is nothing else.
    if not inside[labels].any() or ink[inside[labels]].max() < MIN_CONTRAST:
        inside[1:] = True
    candidate = inside[labels]
    strength = float(np.percentile(ink[candidate], 99)) if candidate.any() else 0.0
    if strength < MIN_CONTRAST:
        raise DataError(f"{name}: blank image, no digit found; give an image with a visible digit")
    # The strokes: clearly inked, relative to the digit itself (paper grain and JPEG noise are not).
    labels, count = ndimage.label(candidate & (ink > STROKE * strength), structure=EIGHT)
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]
    boxes = ndimage.find_objects(labels)
    main = int(np.argmax(mass))
    # The digit's other strokes: not specks, and near the main one.
    top, bottom = boxes[main][0].start, boxes[main][0].stop
    left, right = boxes[main][1].start, boxes[main][1].stop
    reach = max(bottom - top, right - left) // 2
    keep = np.zeros(count + 1, bool)
    for i in np.flatnonzero(mass >= SPECK * mass[main]):
        rows, cols = boxes[i]
        near = rows.start < bottom + reach and rows.stop > top - reach
        keep[i + 1] = near and cols.start < right + reach and cols.stop > left - reach
    cores = keep[labels]
    # The faint edges of the strokes belong to them too.
    strokes = ndimage.maximum_filter(cores, size=5) & candidate
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    window = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop = np.where(strokes, ink, 0)[window]
    # MNIST strokes are saturated in their middle: the bulk of the ink reaches 1.
    level = float(np.percentile(crop[cores[window]], LEVEL))
    return np.clip(crop / level, 0, 1).astype(np.float32)


def centre(ink: np.ndarray) -> np.ndarray:
    """Ink cropped to the digit -> [28, 28]: fit in 20x20, centre of mass at the centre, as in MNIST."""
    rows = np.flatnonzero((ink > 0.2).any(axis=1))
    cols = np.flatnonzero((ink > 0.2).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = FIT / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(new_size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0, 1)

    ys, xs = np.indices(digit.shape)
    mass = digit.sum()
    top = int(round(SIZE / 2 - (ys * digit).sum() / mass))
    left = int(round(SIZE / 2 - (xs * digit).sum() / mass))
    top = min(max(top, 0), SIZE - digit.shape[0])
    left = min(max(left, 0), SIZE - digit.shape[1])
    field = np.zeros((SIZE, SIZE), np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """Any image of one digit -> float32 [28, 28] in 0..1, light ink on black, as in MNIST."""
    gray = working_copy(to_grayscale(image, name))
    return centre(find_digit(ink_map(gray), name))
