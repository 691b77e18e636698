"""One random warp of training images: rotation, zoom, shift and elastic distortion, resampled once.

Keras' ``RandomRotation``, ``RandomZoom`` and ``RandomTranslation`` each resample the image, and
every bilinear resampling blurs a stroke a little more; an elastic distortion after them is a
fourth. Here the four moves are composed into one source coordinate per output pixel, and the
image is sampled there once. Each image draws its own rotation in ±``rotation`` degrees, zoom
``1 + U(-zoom, zoom)`` about the centre (above 1 zooms out, as Keras'), shift in ±``shift`` of
the side along each axis and, with ``strength``, the displacement field of ``RandomElastic``.
What comes in from outside is black, as MNIST's border.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from digits.training.elastic import RandomElastic, bilinear


@keras.saving.register_keras_serializable(package="digits")
class RandomWarp(RandomElastic):
    """Rotation, zoom, shift and elastic distortion of ``strength`` pixels in one resampling,
    in training only."""

    def __init__(
        self,
        rotation: float,
        zoom: float,
        shift: float,
        strength: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(strength, seed=seed, **kwargs)
        self.rotation, self.zoom, self.shift = rotation, zoom, shift

    def call(self, images, training: bool | None = None):
        if not training:
            return images
        batch, height, width = ops.shape(images)[:3]
        dtype = images.dtype
        u = keras.random.uniform((batch, 4), -1.0, 1.0, dtype=dtype, seed=self.generator)
        angle = u[:, 0] * (self.rotation * math.pi / 180)
        scale = 1 + u[:, 1] * self.zoom

        def per_image(value):
            return ops.reshape(value, (-1, 1, 1))

        cos, sin = per_image(ops.cos(angle) * scale), per_image(ops.sin(angle) * scale)
        # Each output pixel, about the centre, rotated and scaled back to where it came from.
        row = ops.reshape(ops.arange(height, dtype=dtype), (1, -1, 1)) - (height - 1) / 2
        col = ops.reshape(ops.arange(width, dtype=dtype), (1, 1, -1)) - (width - 1) / 2
        rows = cos * row - sin * col + (height - 1) / 2 + per_image(u[:, 2] * (self.shift * height))
        cols = sin * row + cos * col + (width - 1) / 2 + per_image(u[:, 3] * (self.shift * width))
        if self.strength:
            field = self.displacement(batch, height, width, dtype)
            rows, cols = rows + field[..., 0], cols + field[..., 1]
        return bilinear(images, rows, cols)

    def get_config(self) -> dict:
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom, "shift": self.shift}
