"""Elastic distortion of training images, as in Simard, Steinkraus and Platt (2003).

Each image gets its own random displacement field: every pixel's move along rows and along
columns is drawn uniformly from -1..1, independently, the two fields are smoothed with a
Gaussian of ``SMOOTHING`` pixels, scaled, and the image is resampled there (bilinear; what
comes in from outside is black). Smoothing makes neighbouring pixels move together, so
strokes bend and thicken like a hand's, which an affine warp cannot do.

The strength is the field's root-mean-square move in pixels along each axis, away from the border: the
paper's alpha of 34 with sigma 4 is about 1.4. (Keras' ``RandomElasticTransform`` is not
this distortion: it draws both fields from one seed, so every pixel moves along the
diagonal, and in ``fit`` one field serves the whole batch.)
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

SMOOTHING = 4.0  # the Gaussian's sigma in pixels: the paper's
RADIUS = 8  # cut at 2 sigma (95% of the mass), a choice: 4 sigma would be 33 taps on 28 pixels


def gaussian(sigma: float = SMOOTHING, radius: int = RADIUS) -> list[float]:
    """A 1-D Gaussian of ``2 * radius + 1`` taps that sums to 1."""
    taps = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1)]
    return [tap / sum(taps) for tap in taps]


@keras.saving.register_keras_serializable(package="digits")
class RandomElastic(layers.Layer):
    """Elastic distortion of ``strength`` pixels (root-mean-square move per axis), in training only."""

    def __init__(self, strength: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strength, self.seed = strength, seed
        self.generator = keras.random.SeedGenerator(seed)
        self.taps = gaussian()
        # Uniform -1..1 has a standard deviation of sqrt(1/3); each pass of the smoothing
        # multiplies it by sqrt(sum(taps²)), the two passes by sum(taps²).
        self.scale = strength / (math.sqrt(1 / 3) * sum(tap * tap for tap in self.taps))

    def call(self, images, training: bool | None = None):
        if not training:
            return images
        batch, height, width = ops.shape(images)[:3]
        field = self.displacement(batch, height, width, images.dtype)
        rows = ops.reshape(ops.arange(height, dtype=images.dtype), (1, -1, 1)) + field[..., 0]
        cols = ops.reshape(ops.arange(width, dtype=images.dtype), (1, 1, -1)) + field[..., 1]
        return bilinear(images, rows, cols)

    def displacement(self, batch, height: int, width: int, dtype: str):
        """Each pixel's move [batch, H, W, 2] (along rows, along columns), in pixels."""
        field = keras.random.uniform((batch, height, width, 2), -1.0, 1.0, dtype=dtype, seed=self.generator)
        taps = ops.convert_to_tensor(self.taps, dtype=dtype)
        # Depthwise: the row field and the column field are each smoothed on their own.
        along_rows = ops.tile(ops.reshape(taps, (-1, 1, 1, 1)), (1, 1, 2, 1))
        along_cols = ops.reshape(along_rows, (1, -1, 2, 1))
        for kernel in (along_rows, along_cols):
            field = ops.depthwise_conv(field, kernel, padding="same")
        return field * self.scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "strength": self.strength, "seed": self.seed}


def bilinear(images, rows, cols):
    """``images`` [B, H, W, C] sampled at (``rows``, ``cols``) [B, H, W]; outside the image is 0."""
    batch, height, width, channels = ops.shape(images)
    pixels = ops.reshape(images, (-1, channels))  # every image's pixels, one after the other
    first = ops.reshape(ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))
    top, left = ops.floor(rows), ops.floor(cols)
    down, right = rows - top, cols - left  # the weights of the lower row and the right column
    out = 0.0
    for row, row_weight in ((top, 1 - down), (top + 1, down)):
        for col, col_weight in ((left, 1 - right), (left + 1, right)):
            inside = (row >= 0) & (row <= height - 1) & (col >= 0) & (col <= width - 1)
            # int32 indices into one flat array: Keras' take_along_axis makes them int64, and
            # oneDNN logs an error line for int64 ops on some CPUs (this one): a noisy terminal.
            # Cast before multiplying: a 16-bit float holds whole numbers exactly only to 256.
            index = ops.cast(ops.clip(row, 0, height - 1), "int32") * width
            index = index + ops.cast(ops.clip(col, 0, width - 1), "int32")
            values = ops.take(pixels, first + index, axis=0)
            weight = ops.where(inside, row_weight * col_weight, 0.0)
            out = out + values * weight[..., None]
    return out
