"""Elastic distortion (``augment.elastic``): its strength, smooth and independent fields, seeded,
in training only, saved with the model; off unless the param turns it on."""

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    ROOT,
    assert_augments_training_images_only,
    assert_fits_augmented_deterministically,
    make_params,
    project_env,
    recipe_params,
    sampled_at,
)

from digits.training.elastic import RADIUS, RandomElastic
from digits.training.model import build_model, load_model

SIDE = 96  # the layer takes any size: a larger grid than MNIST's gives the statistics more pixels


def moves(strength: float, seed: int = 0, images: int = 64) -> np.ndarray:
    """Each pixel's move [images, H, W, 2] (rows, columns), away from the border."""
    moved, grid = sampled_at(RandomElastic(strength, seed=seed), images, SIDE)
    centre = slice(RADIUS, SIDE - RADIUS)  # pixels whose smoothing never meets the border
    return (moved - grid)[:, centre, centre]


@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_the_root_mean_square_move_along_each_axis_is_the_strength(strength):
    move = moves(strength)
    for axis in (0, 1):
        assert np.sqrt((move[..., axis] ** 2).mean()) == pytest.approx(strength, rel=0.05)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_rows_and_columns_move_independently_and_smoothly_over_4_pixels():
    move = moves(1.0)
    # One seed for both fields (Keras' RandomElasticTransform) would move every pixel diagonally: 1.
    assert abs(correlation(move[..., 0], move[..., 1])) < 0.1
    # Smoothed with a Gaussian of sigma 4, pixels 4 apart move alike by exp(-4² / (4 sigma²)), 0.78
    # (sigma 2 would give 0.37, sigma 6 0.89), along either axis, in either field.
    for field in (0, 1):
        assert 0.7 < correlation(move[:, :, :-4, field], move[:, :, 4:, field]) < 0.83
        assert 0.7 < correlation(move[:, :-4, :, field], move[:, 4:, :, field]) < 0.83


def test_it_distorts_training_images_only_seeded_within_the_pixel_range():
    assert_augments_training_images_only(lambda seed: RandomElastic(1.5, seed=seed))


def test_it_is_off_by_default_and_last_of_the_augmentation_when_on():
    assert not any(isinstance(layer, RandomElastic) for layer in build_model(make_params()).layers)
    layered = {"augment.elastic": 1.0, "augment.fused": False, "model.width": 4}  # not in one warp
    model = build_model(recipe_params("modern", layered), 10, seed=0)
    names = [type(layer).__name__ for layer in model.layers[:4]]
    assert names == ["RandomRotation", "RandomZoom", "RandomTranslation", "RandomElastic"]
    assert model.layers[3].strength == 1.0


def test_a_model_with_it_saves_and_loads_safely_and_predicts_the_same(tmp_path):
    model = build_model(make_params(augment__elastic=1.0), seed=0)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")  # safe_mode: only registered classes load
    assert isinstance(loaded.layers[0], RandomElastic) and loaded.layers[0].strength == 1.0
    digits = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(digits, verbose=0), model.predict(digits, verbose=0))


def test_a_fit_with_it_is_deterministic_and_trains_on_other_images(tmp_path, monkeypatch):
    elastic = make_params(augment__elastic=1.0, epochs=1)
    assert_fits_augmented_deterministically(elastic, RandomElastic, tmp_path, monkeypatch)


def test_distorting_in_a_fit_s_graph_logs_no_error_line():
    # Keras' take_along_axis gathers with int64 indices, for which oneDNN writes an error line
    # ("E0000 ... oneDNN supports DT_INT64 only ...") into every fit's terminal on some CPUs.
    script = (
        "import numpy as np, tensorflow as tf\n"
        "from digits.training.elastic import RandomElastic\n"
        "layer = RandomElastic(1.0, seed=0)\n"
        "tf.function(lambda x: layer(x, training=True))(np.zeros((4, 28, 28, 1), np.float32))\n"
    )
    command = [sys.executable, "-c", script]
    env = {**project_env(), "TF_ENABLE_ONEDNN_OPTS": "1"}  # oneDNN on, as in every fit
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert re.search(r"^E\d{4} ", done.stderr, re.M) is None, done.stderr
