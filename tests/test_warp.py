"""One composed warp (``augment.fused``): each image's own similarity transform within the params,
the elastic field on top, sampled once (a third of the blur of Keras' three layers), seeded, in
training only, saved with the model; off unless the param turns it on."""

import keras
import numpy as np
import pytest
from conftest import (
    assert_augments_training_images_only,
    assert_fits_augmented_deterministically,
    make_params,
    recipe_params,
    sampled_at,
)
from keras import layers

from digits.training.model import build_model, load_model
from digits.training.warp import RandomWarp

SIDE = 96  # a larger grid than MNIST's: the moves can be read off pixels far from the border
CENTRE = slice(28, 68)  # 40x40 pixels whose sources stay inside at 30 degrees, 1.1x and 5 px


def similarity(layer: RandomWarp, images: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each image's least-squares affine map from output pixel to source, [images, 3, 2] (about
    the centre: rows for the row and column coefficients and the shift), and what it leaves."""
    source, grid = sampled_at(layer, images, SIDE)
    to_centre = (SIDE - 1) / 2
    source = source[:, CENTRE, CENTRE].reshape(images, -1, 2) - to_centre
    output = grid[:, CENTRE, CENTRE].reshape(images, -1, 2) - to_centre
    design = np.concatenate([output, np.ones_like(output[..., :1])], axis=-1)
    maps = np.stack([np.linalg.lstsq(d, s, rcond=None)[0] for d, s in zip(design, source, strict=True)])
    return maps, source - design @ maps


def test_each_image_gets_its_own_rotation_zoom_and_shift_within_the_params():
    maps, left = similarity(RandomWarp(rotation=30.0, zoom=0.1, shift=0.05, seed=0))
    assert np.abs(left).max() < 1e-3  # one affine map per image, nothing else
    linear, shift = maps[:, :2], maps[:, 2]
    # A rotation times a zoom, the same along both axes: no shear, no stretch.
    np.testing.assert_allclose(linear[:, 0, 0], linear[:, 1, 1], atol=1e-5)
    np.testing.assert_allclose(linear[:, 0, 1], -linear[:, 1, 0], atol=1e-5)
    degrees = np.degrees(np.arctan2(linear[:, 0, 1], linear[:, 0, 0]))
    zoom = np.sqrt(np.linalg.det(linear))
    # Uniform in each range: 256 draws come within 5% of either end.
    assert 28.5 < np.abs(degrees).max() <= 30 and degrees.min() < -28.5 < 28.5 < degrees.max()
    assert zoom.min() < 0.905 and 1.095 < zoom.max() and np.abs(zoom - 1).max() <= 0.1 + 1e-6
    for axis in (0, 1):  # 5% of 96 pixels
        assert shift[:, axis].min() < -4.5 and 4.5 < shift[:, axis].max()
        assert np.abs(shift[:, axis]).max() <= 4.8 + 1e-4
    # Four draws of their own: one draw for two of them would correlate them by ±1.
    draws = np.corrcoef(np.stack([degrees, zoom, shift[:, 0], shift[:, 1]]))
    assert np.abs(draws - np.eye(4)).max() < 0.2


def test_the_elastic_field_moves_each_pixel_on_top_of_the_same_similarity():
    with_field, _ = sampled_at(RandomWarp(30.0, 0.1, 0.05, strength=0.5, seed=0), 64, SIDE)
    without, _ = sampled_at(RandomWarp(30.0, 0.1, 0.05, seed=0), 64, SIDE)
    field = (with_field - without)[:, CENTRE, CENTRE]
    for axis in (0, 1):  # the strength: RandomElastic's root-mean-square move per axis
        assert np.sqrt((field[..., axis] ** 2).mean()) == pytest.approx(0.5, rel=0.05)
    # Along rows and along columns, two fields: one for both would move every pixel diagonally.
    assert abs(np.corrcoef(field[..., 0].ravel(), field[..., 1].ravel())[0, 1]) < 0.1


def test_with_nothing_to_do_it_gives_the_images_back():
    digits = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    still = RandomWarp(0.0, 0.0, 0.0, seed=0)(digits, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(still), digits)


def test_one_resampling_blurs_as_one_of_keras_layers_not_as_three():
    rng = np.random.default_rng(0)
    digits = np.zeros((256, 28, 28, 1), np.float32)
    digits[:, 7:21, 7:21] = rng.random((256, 14, 14, 1)) < 0.5  # sharp: every pixel 0 or 1

    def sharpness(images) -> float:
        """Sum of squares over sum: 1 for pixels of 0 or 1, lower as interpolation greys them."""
        images = keras.ops.convert_to_numpy(images)
        return float((images**2).sum() / images.sum())

    fill = {"fill_mode": "constant", "fill_value": 0.0}
    rotated = layers.RandomRotation(10 / 360, seed=1, **fill)(digits, training=True)
    three = layers.RandomTranslation(0.1, 0.1, seed=3, **fill)(
        layers.RandomZoom(0.1, seed=2, **fill)(rotated, training=True), training=True
    )
    fused = sharpness(RandomWarp(10.0, 0.1, 0.1, seed=1)(digits, training=True))
    # Measured: 0.74 after Keras' rotation alone, 0.55 after all three, 0.70 fused.
    assert fused == pytest.approx(sharpness(rotated), abs=0.06)
    assert fused > sharpness(three) + 0.1


def test_it_warps_training_images_only_seeded_within_the_pixel_range():
    assert_augments_training_images_only(lambda seed: RandomWarp(10.0, 0.1, 0.1, strength=0.5, seed=seed))


def test_the_param_puts_one_warp_in_place_of_the_four_layers_and_is_off_by_default():
    def first_layers(**extra) -> list[keras.layers.Layer]:
        params = recipe_params("modern", {"model.width": 4, "augment.elastic": 0.5, **extra})
        return build_model(params, 10, seed=0).layers[:5]

    assert [type(layer).__name__ for layer in first_layers(**{"augment.fused": False})][:4] == [
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomElastic",
    ]
    warp, conv, *_ = first_layers(**{"augment.fused": True})
    assert type(warp) is RandomWarp and type(conv) is layers.Conv2D
    assert (warp.rotation, warp.zoom, warp.shift, warp.strength) == (10.0, 0.1, 0.1, 0.5)
    # Fused with nothing to do: no layer at all. Unless the param is set, Keras' own layers.
    assert type(build_model(make_params(augment__fused=True), seed=0).layers[0]) is layers.Conv2D
    assert type(build_model(make_params(augment__rotation=10.0), seed=0).layers[0]) is layers.RandomRotation


def test_a_model_with_it_saves_and_loads_safely_and_predicts_the_same(tmp_path):
    params = make_params(augment__fused=True, augment__rotation=10.0, augment__elastic=0.5)
    model = build_model(params, seed=0)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")  # safe_mode: only registered classes load
    warp = loaded.layers[0]
    assert type(warp) is RandomWarp and (warp.rotation, warp.zoom, warp.strength) == (10.0, 0.0, 0.5)
    digits = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(digits, verbose=0), model.predict(digits, verbose=0))


def test_a_fit_with_it_is_deterministic_and_trains_on_other_images(tmp_path, monkeypatch):
    fused = make_params(augment__fused=True, augment__rotation=10.0, augment__shift=0.1, epochs=1)
    assert_fits_augmented_deterministically(fused, RandomWarp, tmp_path, monkeypatch)
