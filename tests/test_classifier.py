"""Model files that are not what they should be are refused in one line naming the file."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, project_env
from PIL import Image
from trained import model_file

from digits.core.errors import DataError
from digits.use.classifier import UNSURE_BELOW, Answer, Classifier


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return model_file(tmp_path_factory)


def save(model, path):
    model.save(path)
    return path


def small(input_shape=(28, 28, 1), classes=10, activation="softmax"):
    import keras

    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(classes, activation=activation)]
    )


def test_a_good_model_gives_probabilities(good_model):
    classifier = Classifier.load(good_model)
    digits = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    probabilities = classifier.probabilities(digits)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    answers = classifier.classify(digits)
    assert [len(a.ranking) for a in answers] == [10] * 5
    assert all(a.ranking[0][1] == probabilities[i].max() for i, a in enumerate(answers))


@pytest.mark.parametrize("offset", [200, 50_000, -5_000])  # in the config, in the weights, near the end
def test_a_damaged_model_file_is_refused(good_model, tmp_path, offset):
    damaged = tmp_path / "model.keras"
    data = bytearray(good_model.read_bytes())
    data[offset] ^= 0x10  # one flipped bit
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"^{damaged}: not a readable Keras model") as error:
        Classifier.load(damaged)
    assert "\n" not in str(error.value)


def test_a_truncated_model_file_is_refused(good_model, tmp_path):
    truncated = tmp_path / "model.keras"
    truncated.write_bytes(good_model.read_bytes()[:10_000])
    with pytest.raises(DataError, match=f"^{truncated}: not a readable Keras model"):
        Classifier.load(truncated)


@pytest.mark.parametrize(
    "model, message",
    [
        (lambda: small(input_shape=(32, 32, 1)), "a model for 32x32x1 inputs, not 28x28x1 digits"),
        (lambda: small(input_shape=(28, 28, 3)), "a model for 28x28x3 inputs, not 28x28x1 digits"),
        (lambda: small(classes=5), "a model with 5 outputs, not 10 classes"),
        (lambda: small(activation=None), r"the model.s outputs are not probabilities .*: logits\?"),
        (lambda: small(activation="sigmoid"), "the model.s outputs are not probabilities"),
    ],
)
def test_a_model_for_something_else_is_refused(tmp_path, model, message):
    path = save(model(), tmp_path / "other.keras")
    with pytest.raises(DataError, match=f"^{path}: {message}"):
        Classifier.load(path)


def test_a_model_with_broken_weights_is_refused(good_model, tmp_path):
    from digits.training.model import load_model

    model = load_model(good_model)
    weights = model.get_weights()
    weights[-2] = np.full_like(weights[-2], np.nan)
    model.set_weights(weights)
    path = save(model, tmp_path / "nan.keras")
    with pytest.raises(DataError, match=f"^{path}: the model outputs NaN or infinity"):
        Classifier.load(path)


def test_predict_reports_a_damaged_model_in_one_line(good_model, tmp_path):
    damaged = tmp_path / "model.keras"
    shutil.copy(good_model, damaged)
    with damaged.open("r+b") as file:
        file.seek(50_000)
        byte = file.read(1)
        file.seek(50_000)
        file.write(bytes([byte[0] ^ 0x01]))
    image = tmp_path / "seven.png"
    Image.open(ROOT / "docs" / "seven.png").save(image)
    result = subprocess.run(
        [sys.executable, "-m", "digits.use.predict", str(image), "--model", str(damaged)],
        cwd=ROOT,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("predict")]
    assert errors == [
        f"predict: error: {damaged}: not a readable Keras model (Bad CRC-32 for file "
        "'model.weights.h5'); give a model trained by this pipeline (dvc repro)"  # a --model of the user's
    ]
    assert "Traceback" not in result.stderr


def test_unsure_answers_name_the_two_likely_digits():
    sure = Answer([(7, 0.97), (1, 0.02), (2, 0.01)])
    unsure = Answer([(4, UNSURE_BELOW - 0.01), (9, 0.15), (7, 0.06)])
    assert (sure.unsure, sure.label) == (False, "7")
    assert (unsure.unsure, unsure.label) == (True, "unsure: 4 or 9")
