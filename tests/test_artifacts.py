"""The models declared in dvc.yaml's ``artifacts:``, as a model registry (``dvc artifacts get``) sees them."""

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run
from revisions import two_revisions

from digits.core.layout import FINAL_MODEL, FOLD_MODELS

pytestmark = pytest.mark.timeout(900)

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_final_and_fold_models_are_declared_as_model_artifacts():
    artifacts = DVC_YAML["artifacts"]
    assert {name: a["path"] for name, a in artifacts.items()} == {
        "digits-cnn": str(FINAL_MODEL),
        "digits-cnn-folds": str(FOLD_MODELS),
    }
    train_outs = {next(iter(o)) if isinstance(o, dict) else o for o in DVC_YAML["stages"]["train"]["outs"]}
    for name, artifact in artifacts.items():
        assert artifact["path"] in train_outs, name  # an output DVC tracks, so it can be fetched
        assert artifact["type"] == "model" and len(artifact["desc"]) > 80, name
        assert {"mnist", "cnn", "keras"} <= set(artifact["labels"]), name


@pytest.fixture(scope="module")
def repo(trained_project, tmp_path_factory) -> Path:
    return two_revisions(trained_project, tmp_path_factory)


def test_dvc_artifacts_get_fetches_a_registered_model_version(repo, tmp_path):
    # A clone that shares the trained repository's DVC cache, as a clone shares a DVC remote.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(repo / ".dvc" / "cache")], clone)
    run(["gto", "register", "digits-cnn", "--version", "v1.0.0"], clone)
    run(["gto", "register", "digits-cnn-folds", "--version", "v1.0.0"], clone)

    run(["dvc", "artifacts", "get", str(clone), "digits-cnn", "-o", "model.keras"], tmp_path)
    run(["dvc", "artifacts", "get", str(clone), "digits-cnn-folds", "-o", "folds"], tmp_path)
    assert (tmp_path / "model.keras").read_bytes() == (repo / FINAL_MODEL).read_bytes()
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["fold_1.keras", "fold_2.keras"]
