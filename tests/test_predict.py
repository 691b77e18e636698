"""The predict command: a batch of images, one line per image, errors that do not stop the others."""

import json

import numpy as np
import pytest
from PIL import Image
from trained import mnist_or_sample, model_file

from digits.core.errors import DataError
from digits.use import classifier as classifier_module
from digits.use.classifier import UNSURE_BELOW, Answer
from digits.use.photo import READABLE
from digits.use.predict import describe, main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_file(tmp_path_factory)


@pytest.fixture
def drawings(tmp_path) -> list:
    """Three test digits as dark-on-light PNGs, and their labels."""
    split = mnist_or_sample("test")
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(255 - split.images[i]).resize((200, 200), Image.Resampling.BICUBIC).save(paths[-1])
    return paths, [int(y) for y in split.labels[:3]]


def test_cli_prints_top_k_and_json(model, drawings, capsys):
    paths, labels = drawings
    main([*map(str, paths), "--top", "3", "--model", str(model)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for path, label, line in zip(paths, labels, lines, strict=True):
        assert line.startswith(f"{path}: {label} (") and line.count("%") == 3
    main([str(paths[0]), "--json", "--top", "2", "--model", str(model)])
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(paths[0]) and len(record["predictions"]) == 2
    assert record["predictions"][0]["digit"] == labels[0] and record["unsure"] is False
    probabilities = [p["probability"] for p in record["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def test_a_bad_image_does_not_stop_the_batch(model, drawings, tmp_path, capsys):
    paths, labels = drawings
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    batch = [str(paths[0]), str(bad), str(paths[1])]
    with pytest.raises(SystemExit) as stop:
        main([*batch, "--model", str(model)])
    out, err = capsys.readouterr()
    assert stop.value.code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [batch[0], batch[2]]
    assert err.splitlines() == [f"predict: error: {bad}: not an image this tool can read; {READABLE}"]

    with pytest.raises(SystemExit):
        main([*batch, "--json", "--model", str(model)])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in records] == batch
    assert records[1] == {
        "image": str(bad),
        "error": f"{bad}: not an image this tool can read; {READABLE}",
    }
    assert [r["predictions"][0]["digit"] for r in (records[0], records[2])] == [labels[0], labels[1]]


def test_only_bad_images_never_load_the_model(tmp_path, capsys):
    bad = tmp_path / "empty.png"
    bad.touch()
    with pytest.raises(SystemExit) as stop:  # the model is missing: not even looked for
        main([str(bad), str(tmp_path / "nothing.png"), "--model", str(tmp_path / "missing.keras")])
    assert stop.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"predict: error: {bad}: empty file; give a PNG or JPEG image of a digit",
        f"predict: error: {tmp_path / 'nothing.png'}: no such file",
    ]


class Unsure:
    """A stand-in model that always hesitates between 4 and 9."""

    input_shape, output_shape = (None, 28, 28, 1), (None, 10)

    def predict_on_batch(self, x):
        row = np.full(10, 0.02, np.float32)
        row[4], row[9] = 0.47, 0.37
        return np.tile(row, (len(x), 1))


def test_an_unsure_answer_says_so(drawings, monkeypatch, capsys):
    paths, _ = drawings
    monkeypatch.setattr(
        classifier_module.Classifier, "load", classmethod(lambda cls, path: cls(Unsure(), path))
    )
    main([str(paths[0]), "--model", "any.keras"])
    assert capsys.readouterr().out == f"{paths[0]}: unsure: 4 or 9; 4 (47.0%), 9 (37.0%)\n"
    main([str(paths[0]), "--json", "--model", "any.keras"])
    record = json.loads(capsys.readouterr().out)
    assert record["unsure"] is True and [p["digit"] for p in record["predictions"]] == [4]


def test_describe_shows_the_top_k_or_at_least_two_when_unsure():
    sure = Answer([(7, 0.991), (1, 0.005), (2, 0.004)])
    unsure = Answer([(4, UNSURE_BELOW / 2), (9, 0.3), (7, 0.3)])
    assert describe(sure, 1) == "7 (99.1%)"
    assert describe(sure, 3) == "7 (99.1%), 1 (0.5%), 2 (0.4%)"
    assert describe(unsure, 1) == "unsure: 4 or 9; 4 (40.0%), 9 (30.0%)"
    assert describe(unsure, 3) == "unsure: 4 or 9; 4 (40.0%), 9 (30.0%), 7 (30.0%)"


def test_missing_model_says_how_to_get_it(drawings, tmp_path, monkeypatch):
    paths, _ = drawings
    monkeypatch.chdir(tmp_path)  # no models/model.keras here
    with pytest.raises(
        DataError, match="^models/model.keras: missing; restore it from DVC.s cache with `dvc checkout`"
    ):
        main([str(paths[0])])
    # A --model the user typed: advice about that path, not about the pipeline.
    with pytest.raises(DataError, match="^typo.keras: no such file; check the path given to --model$"):
        main([str(paths[0]), "--model", "typo.keras"])
