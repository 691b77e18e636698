"""CI's rule for a full-MNIST run that changed the committed results (``.ci/other_cpu.py``).

Another CPU type rounds differently: from the committed inputs, only what ``train`` and the
stages after it wrote may change, and the metrics only a little. Anything else is stale results.
"""

import json
import shutil
import sys

import pytest
import yaml
from conftest import ROOT, run

COMMITTED = ("dvc.lock", "metrics/cv.json", "metrics/test.json", "plots/cv/scores.csv")


@pytest.fixture
def results(tmp_path):
    """A repository holding the committed results, as a clone after ``make run`` has them."""
    for name in COMMITTED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-q", "-m", "results"], tmp_path)
    return tmp_path


def other_cpu(repo):
    return run([sys.executable, str(ROOT / ".ci/other_cpu.py"), str(repo)], ROOT, check=False)


def edit_lock(repo, change):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    change(lock["stages"])
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))


def out(stage, path):
    return next(entry for entry in stage.get("outs", []) + stage.get("deps", []) if entry["path"] == path)


def rounded_elsewhere(repo, moved=0.11):
    """What another CPU type wrote: other model bytes and everything after them, metrics moved."""

    def change(stages):
        for name in ("train", "evaluate"):  # the model's hash where train wrote and evaluate read it
            out(stages[name], "models/model.keras")["md5"] = "0" * 32
        out(stages["plot"], "plots/images")["md5"] = "1" * 32 + ".dir"

    edit_lock(repo, change)
    test = json.loads((repo / "metrics/test.json").read_text())
    test["accuracy"] = round(test["accuracy"] + moved, 2)
    (repo / "metrics/test.json").write_text(json.dumps(test, indent=2))
    (repo / "plots/cv/scores.csv").write_text("fold,accuracy\n1,98.0\n")


def test_the_fits_rounded_on_another_cpu_pass(results):
    rounded_elsewhere(results)
    result = other_cpu(results)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("other_cpu: the committed inputs, only the fits' outputs changed")


@pytest.mark.parametrize(
    "stale",
    [
        lambda stages: stages["train"]["params"]["params.yaml"].update(epochs=9),
        lambda stages: out(stages["train"], "stages/train.py").update(md5="2" * 32),
        lambda stages: out(stages["preprocess"], "data/prepared").update(md5="3" * 32 + ".dir"),
    ],
    ids=["a-param", "train's-code", "the-prepared-data"],
)
def test_other_inputs_are_stale_results(results, stale):
    rounded_elsewhere(results)
    edit_lock(results, stale)
    result = other_cpu(results)
    assert result.returncode == 1, result.stdout
    assert "dvc.lock's inputs (commands, params, code, data) are not the committed ones" in result.stderr


def test_metrics_far_from_the_committed_ones_fail(results):
    rounded_elsewhere(results, moved=0.6)
    result = other_cpu(results)
    assert result.returncode == 1
    assert "metrics/test.json: accuracy" in result.stderr and "committed" in result.stderr


def test_a_file_outside_the_results_fails(results):
    rounded_elsewhere(results)
    (results / "stray.txt").write_text("left by a stage\n")
    result = other_cpu(results)
    assert result.returncode == 1 and "files other than the results changed: stray.txt" in result.stderr
