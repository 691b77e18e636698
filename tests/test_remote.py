"""Results travel through a real remote: a bare git repository and a local-directory DVC remote.

The project is the session's two-revision repository (``revisions.py``: ``HEAD~1`` trained on
``SMALL``, ``HEAD`` on more images for more epochs), pushed by ``publish`` with its data and its
run-cache. Each test then starts from fresh ``git clone``s, as a colleague does: DVC's own push,
pull and run-cache code, no mocks.
"""

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SMALL, copy_project, git_clone, publish, run, snapshot, stages_run
from revisions import BASE_LIMIT, two_revisions

pytestmark = pytest.mark.timeout(900)

RESULTS = ("data/raw", "data/prepared", "models", "metrics", "plots")


@pytest.fixture
def head(trained_project, tmp_path_factory) -> Path:
    """The repository that was pushed, at ``HEAD``: what a clone must get back."""
    return two_revisions(trained_project, tmp_path_factory)


@pytest.fixture
def origin(head, tmp_path) -> Path:
    return publish(head, tmp_path)


def test_a_fresh_clone_pulls_identical_results_and_reruns_only_validate(origin, head, tmp_path):
    clone = git_clone(origin, tmp_path / "clone")
    assert not (clone / "models" / "model.keras").exists()
    run(["dvc", "pull"], clone)
    assert snapshot(clone, *RESULTS) == snapshot(head, *RESULTS)

    result = run(["dvc", "repro"], clone)
    assert stages_run(result.stdout) == ["validate"]
    for stage in ("download", "preprocess", "train", "evaluate", "plot"):
        assert f"Stage '{stage}' didn't change, skipping" in result.stdout
    assert run(["git", "status", "--porcelain"], clone).stdout == ""

    # The pulled model is usable as it is, without training.
    predict = [sys.executable, "-m", "digits.use.predict", str(ROOT / "docs" / "seven.png"), "--json"]
    best = json.loads(run(predict, clone).stdout)["predictions"][0]
    assert best["digit"] in range(10) and 0 < best["probability"] <= 1


def exp_show(repo: Path) -> dict[str, dict]:
    """``dvc exp show --json``: each experiment's name -> its data (params, metrics)."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    groups = [group for rev in shown for group in rev["experiments"] or []]
    return {exp["name"]: exp["data"] for group in groups for exp in group["revs"]}


def test_dvc_exp_push_and_pull_share_an_experiment(origin, tmp_path):
    alice = git_clone(origin, tmp_path / "alice")
    run(["dvc", "pull"], alice)
    ran = run(["dvc", "exp", "run", "-n", "one-epoch", "-S", "epochs=1"], alice)
    assert "train" in stages_run(ran.stdout)  # trained in this clone, not restored
    run(["dvc", "exp", "push", "origin", "one-epoch"], alice)
    run([sys.executable, "-m", "digits.use.share"], alice)  # the run-cache, with its outputs

    bob = git_clone(origin, tmp_path / "bob")
    run(["dvc", "exp", "pull", "origin", "one-epoch"], bob)
    shown = exp_show(bob)["one-epoch"]
    assert shown["params"]["params.yaml"]["data"]["epochs"] == 1
    for name in ("metrics/cv.json", "metrics/test.json"):
        assert shown["metrics"][name]["data"] == json.loads((alice / name).read_text()), name

    run(["dvc", "exp", "apply", "one-epoch"], bob)
    assert snapshot(bob, *RESULTS) == snapshot(alice, *RESULTS)

    # Someone who runs the same experiment again gets alice's outputs from the run-cache.
    dave = git_clone(origin, tmp_path / "dave")
    ran = run(["dvc", "exp", "run", "--pull", "-S", "epochs=1"], dave)
    assert "Stage 'train' is cached - skipping run, checking out outputs" in ran.stdout
    assert snapshot(dave, *RESULTS) == snapshot(alice, *RESULTS)


def test_a_colleagues_exp_run_of_a_pushed_param_set_is_restored_from_the_run_cache(
    origin, trained_project, tmp_path
):
    carol = git_clone(origin, tmp_path / "carol")
    # HEAD~1's params, on HEAD: trained and pushed before, so restored, not trained again.
    params = ["-S", f"data.limit={BASE_LIMIT}", "-S", f"epochs={SMALL['epochs']}"]
    ran = run(["dvc", "exp", "run", "--pull", *params], carol)
    assert stages_run(ran.stdout) == ["validate"]
    for stage in ("preprocess", "train", "evaluate", "plot"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in ran.stdout, stage
    assert snapshot(carol, *RESULTS) == snapshot(trained_project, *RESULTS)


def test_digits_push_without_a_remote_says_how_to_add_one(tmp_path):
    repo = copy_project(tmp_path / "repo", **SMALL)
    result = run([sys.executable, "-m", "digits.use.share"], repo, check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "share: error: no DVC remote; add one with an absolute path or URL:"
        " dvc remote add -d storage /srv/dvc/digits\n"
    )
