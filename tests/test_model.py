import keras
import numpy as np
import pytest
from conftest import make_params, recipe_params

from digits.core.errors import DataError
from digits.core.params import fields
from digits.reporting.recipes import RECIPES
from digits.training.model import build_model, load_model


@pytest.mark.parametrize("arch", ["baseline", "batchnorm", "deeper", "modern"])
def test_each_arch_maps_digits_to_class_probabilities(arch):
    model = build_model(make_params(model__arch=arch))
    out = model.predict(np.zeros((3, 28, 28, 1), np.float32), verbose=0)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_baseline_is_the_tutorial_model():
    model = build_model(make_params())
    assert model.count_params() == 542_230
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    assert not model.optimizer.use_ema and not model.jit_compile


def test_deeper_adds_a_conv_block():
    names = [type(layer).__name__ for layer in build_model(make_params(model__arch="deeper")).layers]
    assert names[:5] == ["Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", "MaxPooling2D"]


def recipe():
    """The modern recipe, small: width 4, 4 epochs."""
    return recipe_params("modern", {"model.width": 4, "epochs": 4})


def test_modern_is_three_conv_blocks_of_width_2x_4x_behind_the_augmentation():
    model = build_model(recipe(), steps_per_epoch=10)
    names = [type(layer).__name__ for layer in model.layers]
    assert names[:2] == ["RandomWarp", "Conv2D"]  # rotation, zoom and shift in one warp
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 8, 16]
    assert names.count("BatchNormalization") == 4 and names.count("Dropout") == 2
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.get_config()["weight_decay"] == pytest.approx(0.01)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    config = build_model(recipe(), steps_per_epoch=10).optimizer.get_config()["learning_rate"]
    schedule = keras.optimizers.schedules.deserialize(config)
    # 4 epochs of 10 steps: 1 epoch of warm-up to 0.003, then 3 of cosine decay.
    rates = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert rates == pytest.approx([0, 0.0015, 0.003, 0.0015, 0], abs=1e-9)


@pytest.mark.parametrize("fused", [True, False])
def test_augmentation_changes_training_images_only(fused):
    model = build_model(recipe_params("modern", {"model.width": 4, "augment.fused": fused}), 10, seed=0)
    first_conv = next(i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Conv2D))
    assert first_conv == (1 if fused else 3)
    augment = keras.Sequential(model.layers[:first_conv])
    digits = np.zeros((8, 28, 28, 1), np.float32)
    digits[:, 8:20, 12:16] = 1
    trained_on = keras.ops.convert_to_numpy(augment(digits, training=True))
    assert not np.array_equal(trained_on, digits) and trained_on.min() >= 0
    assert len({image.tobytes() for image in trained_on}) == 8  # each image moved its own way
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(augment(digits, training=False)), digits)
    # What predict and evaluate see: the model without the augmentation.
    without = keras.Sequential([keras.Input((28, 28, 1)), *model.layers[first_conv:]])
    np.testing.assert_array_equal(model.predict(digits, verbose=0), without.predict(digits, verbose=0))


def test_a_cosine_schedule_without_its_length_is_refused():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_model(recipe())


# Every key the modern recipe changes on its own (warm-up needs the cosine schedule, fusing
# needs an augmentation to fuse, tests/test_warp.py; epochs and batch size are not the model's).
CHANGED_ALONE = {
    key: value
    for key, value in RECIPES["modern"].items()
    if key not in ("optimizer.warmup_epochs", "augment.fused", "epochs", "batch_size")
    and value != fields()[key].default
}


def without_names(config: object) -> object:
    """A Keras config without its ``name``s: Keras names each new layer anew (``dense_2``, ``dense_3``)."""
    if isinstance(config, dict):
        return {key: without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list | tuple):
        return [without_names(value) for value in config]
    return config


def described(params) -> dict:
    """What ``build_model`` made of ``params``: layers, optimizer and loss, names aside (seeded draws)."""
    model = build_model(params, steps_per_epoch=10, seed=0)
    return without_names(
        {
            "model": model.get_config(),
            "optimizer": [type(model.optimizer).__name__, model.optimizer.get_config()],
            "loss": model.loss if isinstance(model.loss, str) else keras.losses.serialize(model.loss),
        }
    )


@pytest.mark.parametrize("overrides", [{}, {"epochs": 3, "batch_size": 64}])
def test_the_same_model_is_described_the_same(overrides):
    # Built twice, or with keys that are not the model's: equal, so a difference below means something.
    assert described(make_params()) == described(make_params(**overrides))
    assert described(recipe()) == described(recipe())


@pytest.mark.parametrize(("key", "value"), CHANGED_ALONE.items())
def test_each_recipe_key_changes_the_model(key, value):
    assert described(make_params()) != described(make_params(**{key.replace(".", "__"): value}))


def test_load_model_errors(tmp_path):
    with pytest.raises(DataError, match="missing; restore it from DVC.s cache with `dvc checkout`"):
        load_model(tmp_path / "model.keras")
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable Keras model"):
        load_model(tmp_path / "model.keras")


@pytest.mark.parametrize(("pool", "side"), [("valid", 3), ("same", 4)])
def test_same_pooling_keeps_the_last_row_and_column_of_the_7x7_map(pool, side):
    model = build_model(make_params(model__arch="modern", model__pool=pool))
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [p.output.shape[1] for p in pools] == [14, 7, side]
