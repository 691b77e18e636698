"""The models declared in dvc.yaml's ``artifacts:``, as a model registry (``dvc artifacts get``) sees them."""

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, digest, git_clone, publish, run, snapshot
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


@pytest.fixture
def registry(trained_project, tmp_path_factory, tmp_path) -> Path:
    """The two-revision repository behind a bare git remote and a DVC remote, both models registered
    twice: v1.0.0 at ``HEAD~1`` (``trained_project``), v2.0.0 at ``HEAD``. Returns the git remote."""
    origin = publish(two_revisions(trained_project, tmp_path_factory), tmp_path)
    maintainer = git_clone(origin, tmp_path / "maintainer")
    for name in DVC_YAML["artifacts"]:
        run(["gto", "register", name, "HEAD~1", "--version", "v1.0.0"], maintainer)
        run(["gto", "register", name, "HEAD", "--version", "v2.0.0"], maintainer)
    run(["git", "push", "-q", "origin", "--tags"], maintainer)
    return origin


def test_dvc_artifacts_get_fetches_an_older_registered_model_version(
    registry, trained_project, tmp_path_factory, tmp_path
):
    def get(name: str, version: str) -> Path:
        out = tmp_path / version / Path(DVC_YAML["artifacts"][name]["path"]).name
        run(["dvc", "artifacts", "get", str(registry), name, "--rev", version, "-o", str(out)], tmp_path)
        return out

    old, new = trained_project, two_revisions(trained_project, tmp_path_factory)
    assert get("digits-cnn", "v1.0.0").read_bytes() == (old / FINAL_MODEL).read_bytes()
    assert get("digits-cnn", "v2.0.0").read_bytes() == (new / FINAL_MODEL).read_bytes()
    assert (old / FINAL_MODEL).read_bytes() != (new / FINAL_MODEL).read_bytes()  # the versions differ
    folds = get("digits-cnn-folds", "v1.0.0")
    assert snapshot(folds.parent, folds.name) == {
        f"{folds.name}/{p.name}": digest(p) for p in sorted((old / FOLD_MODELS).iterdir())
    }
