import re

import pytest
from conftest import ROOT, params_tree

from digits.core.errors import ParamsError
from digits.core.params import Params, allowed, fields, load_params, parse_params, read_yaml


def with_value(key: str, value) -> dict:
    return params_tree(**{key.replace(".", "__"): value})


def test_committed_params_list_the_declared_keys_in_order_with_their_declared_types():
    # What the validator lets pass: any order, and ``dropout: 0`` for 0.0. dvc.lock records the
    # values as written, so ``0`` then ``0.0`` would be a params change; the file reads as the
    # README's table does.
    raw = read_yaml((ROOT / "params.yaml").read_text())
    flat = {}
    for section, values in raw.items():
        flat.update(
            {f"{section}.{k}": v for k, v in values.items()}
            if isinstance(values, dict)
            else {section: values}
        )
    assert list(flat) == list(fields())
    for key, info in fields().items():
        assert type(flat[key]) is type(info.default), f"{key}: {flat[key]!r}, declared {info.default!r}"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", 0, "epochs is 0; it must be an integer >= 1"),
        ("epochs", "ten", "epochs is 'ten'"),
        ("epochs", True, "epochs is True"),
        ("batch_size", 0, "batch_size is 0"),
        ("cv.folds", 1, "cv.folds is 1; it must be an integer >= 2"),
        ("optimizer.learning_rate", 0, "optimizer.learning_rate is 0; it must be a number > 0"),
        ("optimizer.momentum", 1.0, "optimizer.momentum is 1.0; it must be a number >= 0 and < 1"),
        ("optimizer.learning_rate", float("inf"), "optimizer.learning_rate is inf; it must be a number > 0"),
        ("optimizer.learning_rate", float("nan"), "optimizer.learning_rate is nan"),
        (
            "optimizer.learning_rate",
            50.0,
            "learning_rate is 50.0; it must be a number > 0 and <= 1",
        ),
        ("seed", 2**32, "seed is 4294967296; it must be an integer >= 0 and <= 2147483647"),
        ("cv.folds", 100, "cv.folds is 100; it must be an integer >= 2 and <= 99"),
        (
            "cv.scheduler",
            "localhost",
            "scheduler is 'localhost'; it must be null or a Dask scheduler address",
        ),
        ("cv.scheduler", "tcp://host:port", "cv.scheduler is 'tcp://host:port'"),
        ("epochs", 2.0, "epochs is 2.0; it must be an integer"),
        ("optimizer.momentum", -0.1, "optimizer.momentum is -0.1"),
        ("data.source", "kaggle", "data.source is 'kaggle'; it must be one of auto, mnist, sample"),
        (
            "model.arch",
            "resnet",
            "model.arch is 'resnet'; it must be one of baseline, batchnorm, deeper, modern",
        ),
        ("data.limit", 20, "data.limit is 20; it must be null or at least 10 x cv.folds = 50"),
        ("cv.n_jobs", 0, "cv.n_jobs is 0"),
        ("cv.backend", "ray", "cv.backend is 'ray'"),
        ("optimizer.name", "adam", "optimizer.name is 'adam'; it must be one of sgd, adamw"),
        ("augment.rotation", 200.0, "augment.rotation is 200.0; it must be a number >= 0 and <= 180"),
        ("model.width", 0, "model.width is 0; it must be an integer >= 1"),
        ("model.dropout", 1.0, "model.dropout is 1.0; it must be a number >= 0 and < 1"),
        # A warm-up belongs to the cosine schedule, and leaves at least one epoch to decay.
        (
            "optimizer.warmup_epochs",
            2,
            "optimizer.warmup_epochs is 2; it must be 0, or with optimizer.schedule",
        ),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(key, value, message):
    with pytest.raises(ParamsError, match="^params.yaml: ") as excinfo:
        parse_params(with_value(key, value))
    assert message in str(excinfo.value)


def test_a_warm_up_as_long_as_the_training_is_refused():
    tree = with_value("optimizer.schedule", "cosine")
    tree["optimizer"]["warmup_epochs"] = tree["epochs"]
    with pytest.raises(ParamsError, match="warmup_epochs is 10; .* fewer than epochs \\(10\\)"):
        parse_params(tree)
    tree["optimizer"]["warmup_epochs"] = 9
    assert parse_params(tree).optimizer.warmup_epochs == 9


def test_integer_learning_rate_is_accepted_as_float():
    assert parse_params(with_value("optimizer.learning_rate", 1)).optimizer.learning_rate == 1.0


def params_text(**replace: str) -> str:
    """The committed params.yaml as text, with whole lines replaced: ``epochs="epochs: 1:00"``."""
    text = (ROOT / "params.yaml").read_text()
    for key, line in replace.items():
        text, count = re.subn(rf"(?m)^(\s*){key}:.*$", lambda m, line=line: m.group(1) + line, text)
        assert count == 1, key
    return text


def load_text(tmp_path, text: str):
    (tmp_path / "params.yaml").write_text(text)
    return load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    "line",
    ["seed: 010", "seed: 0o17", "learning_rate: 1e-3", "learning_rate: 1E-2", "limit: ~", "folds: 0x5"],
)
def test_values_read_exactly_as_dvc_reads_them(tmp_path, line):
    from dvc.utils.serialize import parse_yaml

    text = params_text(**{line.split(":")[0]: line})
    params = load_text(tmp_path, text)
    dvc_tree = parse_yaml(text, "params.yaml")  # what dvc.lock records
    assert params.model_dump() == dvc_tree


def test_yaml_1_1_readings_are_not_used(tmp_path):
    # PyYAML (YAML 1.1) reads 010 as 8 and 1:00 as 60; DVC records 10 and "1:00".
    assert load_text(tmp_path, params_text(seed="seed: 010")).seed == 10
    with pytest.raises(ParamsError, match=r"^params.yaml: epochs is '1:00'; it must be an integer"):
        load_text(tmp_path, params_text(epochs="epochs: 1:00"))
    with pytest.raises(ParamsError, match=r"^params.yaml: seed is 'yes'; it must be an integer"):
        load_text(tmp_path, params_text(seed="seed: yes"))


def test_committed_params_are_the_declared_defaults():
    # As dicts, so a failure names the key whose default and committed value differ.
    assert load_params(ROOT / "params.yaml").model_dump() == Params().model_dump()


def test_every_key_has_help_and_says_what_it_allows():
    for key, info in fields().items():
        assert info.description, key
        kinds = ("an integer", "a number", "one of", "null or", "a string", "true or false")
        assert allowed(info).startswith(kinds), key
    assert allowed(fields()["cv.n_jobs"]) == "null or an integer >= 1 and <= 256"
    assert allowed(fields()["augment.fused"]) == "true or false"


def test_a_switch_takes_true_or_false_only():
    for typo in (1, "yes", "true"):  # YAML's true is a bool; quoted, or a number, it is a typo
        tree = params_tree()
        tree["augment"]["fused"] = typo
        with pytest.raises(ParamsError, match=f"augment.fused is {typo!r}; it must be true or false"):
            parse_params(tree)
    tree = params_tree()
    tree["augment"]["fused"] = True
    assert parse_params(tree).augment.fused is True


def test_misspelled_key_suggests_the_right_one():
    tree = params_tree()
    tree["epoch"] = 20  # what `dvc exp run -S epoch=20` silently adds
    with pytest.raises(ParamsError, match=r"unknown key 'epoch'; did you mean epochs\?"):
        parse_params(tree)
    tree = params_tree()
    tree["optimizer"]["learnig_rate"] = 0.1
    with pytest.raises(ParamsError, match=r"did you mean optimizer.learning_rate\?"):
        parse_params(tree)


def test_missing_key_is_named():
    tree = params_tree()
    del tree["cv"]["folds"]
    with pytest.raises(ParamsError, match="cv.folds is missing"):
        parse_params(tree)


def test_unreadable_or_invalid_yaml(tmp_path):
    with pytest.raises(ParamsError, match="cannot read it"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("epochs: [1\n")
    with pytest.raises(ParamsError, match="not valid YAML at line"):
        load_params(tmp_path / "params.yaml")


def test_a_params_file_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes("epochs: 10  # \u00e9poques\n".encode("latin-1"))
    with pytest.raises(ParamsError, match=r"params.yaml: not UTF-8 text \(byte 14\); save it as UTF-8"):
        load_params(path)


def test_readme_table_is_made_from_the_declarations():
    from digits.core.params import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text()
