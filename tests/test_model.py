import keras
import numpy as np
import pytest

from digits.errors import DataError
from digits.model import build_model, load_model


@pytest.mark.parametrize("arch", ["baseline", "batchnorm", "deeper"])
def test_each_arch_maps_digits_to_class_probabilities(arch):
    model = build_model(arch, learning_rate=0.01, momentum=0.9)
    out = model.predict(np.zeros((3, 28, 28, 1), np.float32), verbose=0)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_baseline_is_the_tutorial_model():
    model = build_model("baseline", 0.01, 0.9)
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
    assert not model.jit_compile


def test_deeper_adds_a_conv_block():
    names = [type(layer).__name__ for layer in build_model("deeper", 0.01, 0.9).layers]
    assert names[:5] == ["Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", "MaxPooling2D"]


def test_load_model_errors(tmp_path):
    with pytest.raises(DataError, match="missing; restore it from DVC.s cache with `dvc checkout`"):
        load_model(tmp_path / "model.keras")
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable Keras model"):
        load_model(tmp_path / "model.keras")
