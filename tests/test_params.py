import pytest
from conftest import ROOT, params_tree

from digits.errors import ParamsError
from digits.params import load_params, parse_params


def with_value(key: str, value) -> dict:
    return params_tree(**{key.replace(".", "__"): value})


def test_committed_params_are_valid_and_typed():
    params = load_params(ROOT / "params.yaml")
    assert params.epochs >= 1 and params.cv.folds >= 2
    assert params.data.source in ("auto", "mnist", "sample")
    assert isinstance(params.optimizer.learning_rate, float)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("epochs", 0, "epochs is 0; it must be an integer >= 1"),
        ("epochs", "ten", "epochs is 'ten'"),
        ("epochs", True, "epochs is True"),
        ("batch_size", 0, "batch_size is 0"),
        ("cv.folds", 1, "cv.folds is 1; it must be an integer >= 2"),
        ("optimizer.learning_rate", 0, "optimizer.learning_rate is 0; it must be a number > 0"),
        ("optimizer.momentum", 1.0, "optimizer.momentum is 1.0; it must be a number in [0, 1)"),
        ("optimizer.momentum", -0.1, "optimizer.momentum is -0.1"),
        ("data.source", "kaggle", "data.source is 'kaggle'; it must be one of auto, mnist, sample"),
        ("model.arch", "resnet", "model.arch is 'resnet'; it must be one of baseline, batchnorm, deeper"),
        ("data.limit", 20, "data.limit is 20; it must be null or at least 10 x cv.folds = 50"),
        ("cv.n_jobs", 0, "cv.n_jobs is 0"),
        ("cv.backend", "ray", "cv.backend is 'ray'"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(key, value, message):
    with pytest.raises(ParamsError, match="^params.yaml: ") as excinfo:
        parse_params(with_value(key, value))
    assert message in str(excinfo.value)


def test_integer_learning_rate_is_accepted_as_float():
    assert parse_params(with_value("optimizer.learning_rate", 1)).optimizer.learning_rate == 1.0


def test_exponent_notation_is_a_number():
    # PyYAML reads `learning_rate: 1e-3` as the string "1e-3"; DVC reads a number.
    assert parse_params(with_value("optimizer.learning_rate", "1e-3")).optimizer.learning_rate == 0.001


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
