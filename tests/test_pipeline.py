"""The pipeline end to end, through DVC, on a copy of the project in a temporary git repository.

Small and real: the bundled sample, 300 training images, 2 folds, 1 epoch. The trained
repository is built once per session (``trained_project``); each test that runs a command
works on its own copy (``project``), so the tests pass alone and in any order. Plots and
the review across two commits: test_plots_diff.py and test_review.py.
"""

import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED_MNIST, needs_full_mnist, project_env, run, snapshot, stages_run

from digits.reporting.render import OFFLINE_TEMPLATE, offline_template
from digits.reporting.summary import EXP_SHOW

pytestmark = pytest.mark.timeout(600)

RESULTS = ("metrics", "plots", "models", "data/raw", "data/prepared")


def strict_json(path: Path) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_repro_writes_every_output(trained_project):
    cv = strict_json(trained_project / "metrics/cv.json")
    test = strict_json(trained_project / "metrics/test.json")
    assert cv["data"] == {"source": "sample", "images": 300}
    assert set(cv["fold_accuracy"]) == {"fold_1", "fold_2"}
    # One epoch on 150 images per fold: far better than chance (10%), far from trained.
    assert 40 < cv["accuracy_mean"] < 95, cv
    assert 50 < test["accuracy"] < 97 and 40 < test["ensemble_accuracy"] < 97, test
    assert test["data"] == {"source": "sample", "images": 1000}
    for path in (
        "models/model.keras",
        "models/folds/fold_1.keras",
        "models/folds/fold_2.keras",
        "plots/images/learning_curves.png",
        "plots/images/confusion_matrix.png",
    ):
        assert (trained_project / path).stat().st_size > 1000, path
    assert len((trained_project / "plots/test/predictions.csv").read_text().splitlines()) == 1001
    # metrics and plot data are in git, not only in the DVC cache
    tracked = run(["git", "ls-files", "metrics", "plots"], trained_project).stdout.split()
    assert "metrics/cv.json" in tracked and "plots/cv/history.csv" in tracked


def test_the_terminal_shows_progress_and_no_tensorflow_start_up_noise(trained_project):
    log = (trained_project.parent / "repro.log").read_text()
    assert re.search(r"^train: 3/3 fits done, \d+ s so far$", log, re.M) and "train: 2-fold accuracy" in log
    for noise in (
        "absl::InitializeLog",
        "oneDNN custom operations",
        "use_unbounded_threadpool",
        "E0000",
        "I0000",
        "triggered tf.function retracing",
    ):
        assert noise not in log


def test_every_metrics_and_plot_file_is_strict_json_or_csv(trained_project):
    files = [*trained_project.glob("metrics/*.json"), *trained_project.glob("plots/**/*.csv")]
    assert len(files) >= 6
    for path in files:
        if path.suffix == ".json":
            strict_json(path)
        else:
            table = pd.read_csv(path)  # an empty cell, nan or inf would read as non-finite
            # Numbers, but for mean_history's split column (train, validation) and the data
            # trained on (for the legends of dvc plots diff)
            labels = table.select_dtypes(exclude="number")
            assert set(labels.columns) <= {"split", "data"}, path
            assert labels.get("split", pd.Series(dtype=str)).isin(["train", "validation"]).all(), path
            assert (labels.get("data", pd.Series(dtype=str)) == "300 MNIST sample images").all(), path
            numbers = table.select_dtypes("number").to_numpy(dtype=float)
            assert len(table) and numbers.size + labels.size == table.size, path
            assert np.isfinite(numbers).all(), path


def test_second_repro_runs_only_the_cheap_check_and_is_fast(project):
    start = time.monotonic()
    result = run(["dvc", "repro"], project)
    seconds = time.monotonic() - start
    assert stages_run(result.stdout) == ["validate"]  # always runs: it is how DVC notices new data
    assert "didn't change" in result.stdout or "up to date" in result.stdout
    assert seconds < 5, f"a no-op dvc repro took {seconds:.1f} s"  # 1.5 s idle, 3.5 s at load 5
    assert run(["git", "status", "--porcelain"], project).stdout == ""


def test_same_params_give_byte_identical_results(project):
    before = snapshot(project, "metrics", "plots", "models", "dvc.lock")
    for stage in ("train", "evaluate", "plot"):
        run(["dvc", "repro", "-f", "-s", stage], project)
    assert snapshot(project, "metrics", "plots", "models", "dvc.lock") == before


def test_plot_param_reruns_only_plot(project):
    result = run(["dvc", "exp", "run", "-S", "plot.misclassified=6"], project)
    assert stages_run(result.stdout) == ["validate", "plot"]


def test_an_epochs_experiment_is_listed_and_the_setting_before_it_comes_back_from_the_run_cache(project):
    before = snapshot(project, *RESULTS)
    result = run(["dvc", "exp", "run", "-n", "two-epochs", "-S", "epochs=2"], project)
    assert stages_run(result.stdout) == ["validate", "train", "evaluate", "plot"]
    assert snapshot(project, "models") != before
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    data = next(e for e in experiments if e["name"] == "two-epochs")["revs"][0]["data"]
    assert "accuracy_mean" in data["metrics"]["metrics/cv.json"]["data"]
    assert "ensemble_accuracy" in data["metrics"]["metrics/test.json"]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2
    # The README's experiments table, in a 160-column terminal: results and the param that differs.
    table = run(["bash", "-c", f"{EXP_SHOW} --no-pager"], project, COLUMNS="160").stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert header == [
        "Experiment",
        "Created",
        "accuracy_mean",
        "accuracy_std",
        "accuracy",
        "loss",
        "ensemble_accuracy",
        "epochs",
    ]
    assert max(map(len, table.splitlines())) <= 160 and "two-epochs" in table
    assert f"{EXP_SHOW}\n" in (ROOT / "README.md").read_text()

    # Back to the committed epochs: a param set seen before, restored, not trained again.
    start = time.monotonic()
    result = run(["dvc", "exp", "run", "-S", "epochs=1"], project)
    seconds = time.monotonic() - start
    for stage in ("train", "evaluate", "plot"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in result.stdout, stage
    assert stages_run(result.stdout) == ["validate"]
    assert snapshot(project, *RESULTS) == before
    assert seconds < 20, f"restoring from the run-cache took {seconds:.0f} s"


def test_editing_a_module_reruns_exactly_the_stages_that_run_it(project):
    with open(project / "digits/reporting/evaluation.py", "a") as file:
        file.write("\n# an edit\n")
    result = run(["dvc", "repro"], project)
    # evaluate's outputs come out the same, so plot, which reads them, need not run
    assert stages_run(result.stdout) == ["validate", "evaluate"]


def test_misspelled_param_stops_before_anything_runs(project):
    before = snapshot(project, *RESULTS)
    # DVC refuses `-S epoch=3` itself, but `-S +epoch=3` (or a hand edit) adds the key.
    result = run(["dvc", "exp", "run", "-S", "+epoch=3"], project, check=False)
    assert result.returncode != 0
    assert "params.yaml: unknown key 'epoch'; did you mean epochs?" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(project, *RESULTS) == before


@pytest.mark.parametrize(
    "setting, message",
    [
        ("cv.backend=dask", "cv.backend is 'dask' but cv.scheduler is null"),
        ("cv.scheduler=localhost:8786", "cv.scheduler is 'localhost:8786'; it must be null or a Dask"),
        ("seed=4294967295", "seed is 4294967295; it must be an integer >= 0 and <= 2147483647"),
        ("optimizer.learning_rate=.inf", "optimizer.learning_rate is inf; it must be a number > 0"),
        ("optimizer.learning_rate=100", "optimizer.learning_rate is 100; it must be a number > 0 and <= 1"),
    ],
)
def test_params_mistakes_are_caught_by_validate_and_cost_nothing(project, setting, message):
    before = snapshot(project, *RESULTS)
    key, value = setting.split("=")
    params = (project / "params.yaml").read_text()
    leaf = key.split(".")[-1]
    edited, count = re.subn(rf"(?m)^(\s*){leaf}:.*$", rf"\g<1>{leaf}: {value}", params)
    assert count == 1
    (project / "params.yaml").write_text(edited)
    result = run(["dvc", "repro"], project, check=False, DASK_SCHEDULER_ADDRESS="")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert stages_run(result.stdout) == ["validate"]
    assert snapshot(project, *RESULTS) == before


def fail_between_writes(project: Path, failure: str) -> None:
    """Make train run ``failure`` after it wrote the fold models, before the final model."""
    stage = project / "stages/train.py"
    code = stage.read_text()
    assert code.count("    save_model(FINAL_MODEL, final)\n") == 1
    stage.write_text(code.replace("    save_model(FINAL_MODEL, final)\n", f"    {failure}\n"))
    run(["git", "commit", "-qam", "a failing train"], project)


def test_a_failing_stage_keeps_the_last_good_results(project):
    before = snapshot(project, *RESULTS)
    fail_between_writes(project, 'raise OSError(28, "No space left on device", "models/model.keras")')
    (project / "params.yaml").write_text(
        (project / "params.yaml").read_text().replace("epochs: 1", "epochs: 2")
    )
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0 and stages_run(result.stdout) == ["validate", "train"]
    assert (
        "train: error: disk full while writing models/model.keras; free some space and run it again; "
        "its outputs are back as dvc.lock records them"
    ) in result.stderr
    # DVC deleted them before the run, train wrote new fold models: all old again, byte for byte.
    assert snapshot(project, *RESULTS) == before


def test_after_a_hard_kill_one_command_brings_the_outputs_back(project):
    before = snapshot(project, *RESULTS)
    fail_between_writes(project, "os.kill(os.getpid(), 9)")
    (project / "stages/train.py").write_text("import os\n" + (project / "stages/train.py").read_text())
    (project / "params.yaml").write_text(
        (project / "params.yaml").read_text().replace("epochs: 1", "epochs: 2")
    )
    result = run(["dvc", "repro"], project, check=False)
    assert result.returncode != 0 and snapshot(project, *RESULTS) != before
    result = run(["digits-restore"], project)
    assert result.stdout.startswith("restore: ") and "models/model.keras" in result.stdout
    assert snapshot(project, *RESULTS) == before
    assert (
        run(["digits-restore"], project).stdout
        == "restore: nothing: every output is as dvc.lock records it\n"
    )


# DVC runs a stage through $SHELL -c: bash execs the command, so dvc is the stage's parent;
# dash, /bin/sh (DVC's shell when SHELL is unset, as in CI), forks it, so dvc is its grandparent.
@pytest.mark.parametrize("shell", ["/bin/bash", "/bin/sh"])
def test_a_stage_ends_with_dvc_when_dvc_is_killed(project, shell):
    import psutil

    before = snapshot(project, *RESULTS)
    (project / "params.yaml").write_text(
        (project / "params.yaml").read_text().replace("epochs: 1", "epochs: 3")
    )
    dvc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=project,
        env=project_env() | {"SHELL": shell},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in dvc.stdout:  # the fits are under way
        if "epoch" in line:
            break
    stage = [
        p for p in psutil.Process(dvc.pid).children(recursive=True) if "stages.train" in " ".join(p.cmdline())
    ]
    tree = stage + stage[0].children(recursive=True)
    assert len(tree) >= 3, tree  # the stage and its two training workers
    dvc.kill()
    dvc.wait()
    gone, alive = psutil.wait_procs(tree, timeout=60)
    assert not alive, f"still running after dvc was killed: {[p.cmdline() for p in alive]}"
    assert snapshot(project, *RESULTS) == before  # and the stage put its outputs back on its way out


def test_a_queued_sweep_that_repeats_a_setting_restores_it_from_the_run_cache(project):
    before = json.loads((project / "metrics/cv.json").read_text())
    for name in ("first", "again"):  # a queued sweep that has the same setting twice
        run(["dvc", "exp", "run", "--queue", "-S", "epochs=2", "-n", name], project)
    run(["dvc", "exp", "run", "--run-all"], project)
    logs = {name: run(["dvc", "queue", "logs", name], project).stdout for name in ("first", "again")}
    assert stages_run(logs["first"]) == ["validate", "train", "evaluate", "plot"]
    for stage in ("train", "evaluate", "plot"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in logs["again"], stage
    assert stages_run(logs["again"]) == ["validate"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    metrics = {
        exp["name"]: exp["data"]["metrics"]["metrics/cv.json"]["data"]
        for commit in shown
        for experiments in commit.get("experiments") or []
        for exp in experiments["revs"]
    }
    assert metrics["again"] == metrics["first"] != before


def test_a_failed_download_keeps_the_previous_data(project, tmp_path):
    before = snapshot(project, *RESULTS)
    (tmp_path / "empty").mkdir()
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("sample", "auto"))
    result = run(["dvc", "repro"], project, check=False, MNIST_DIR=str(tmp_path / "empty"))
    assert result.returncode != 0
    assert f"MNIST_DIR={tmp_path / 'empty'}: cannot read" in result.stderr
    assert stages_run(result.stdout) == ["validate", "download"]
    assert snapshot(project, *RESULTS) == before
    # every mirror down: the same
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("auto", "mnist"))
    no_mirror = dict(HOME=str(tmp_path), MNIST_MIRRORS="http://127.0.0.1:9/")  # and no Keras cache
    result = run(["dvc", "repro"], project, check=False, **no_mirror)
    assert result.returncode != 0 and "no mirror worked" in result.stderr
    assert snapshot(project, *RESULTS) == before


@needs_full_mnist
def test_auto_switches_to_full_mnist_as_soon_as_it_can_be_had(project, tmp_path):
    isolated = dict(HOME=str(tmp_path), MNIST_MIRRORS="http://127.0.0.1:9/")  # no Keras cache, no mirror
    (project / "params.yaml").write_text((project / "params.yaml").read_text().replace("sample", "auto"))
    result = run(["dvc", "repro"], project, **isolated)
    # Still the sample: nothing else can be had. download re-runs for its warning (it reads
    # data.source), gives the same data/raw, and nothing after it runs.
    assert stages_run(result.stdout) == ["validate", "download"]
    result = run(["dvc", "repro"], project, MNIST_DIR=str(SHARED_MNIST), **isolated)
    assert stages_run(result.stdout) == ["validate", "download", "preprocess", "train", "evaluate", "plot"]
    test = json.loads((project / "metrics/test.json").read_text())
    assert test["data"] == {"source": "mnist", "images": 10_000}
    # Once there, full MNIST stays, with or without MNIST_DIR, and nothing re-runs.
    assert stages_run(run(["dvc", "repro"], project, **isolated).stdout) == ["validate"]


def test_offline_template_is_committed_and_current():
    assert (OFFLINE_TEMPLATE).is_file() and OFFLINE_TEMPLATE.read_text() == offline_template()


def test_plots_work_in_a_fresh_clone_without_make(trained_project, tmp_path):
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(trained_project), str(clone)], tmp_path)
    run(["dvc", "plots", "show", "-o", str(tmp_path / "out")], clone)
    html = (tmp_path / "out" / "index.html").read_text()
    assert "vegaEmbed(" in html and len(html) > 500_000  # the libraries are inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    run(["dvc", "plots", "diff", "main", "-o", str(tmp_path / "diff")], clone)
    assert (tmp_path / "diff" / "index.html").is_file()


def test_temporary_files_of_a_killed_run_are_ignored_and_cleaned(project):
    stale = [project / "data/.raw.x1.tmp", project / "models/.model.keras.x2.tmp.keras"]
    stale[0].mkdir()
    stale[1].write_bytes(b"half")
    assert run(["git", "status", "--porcelain"], project).stdout == ""  # git does not see them
    run(["dvc", "repro", "-f", "-s", "download"], project)
    run(["dvc", "repro", "-f", "-s", "train"], project)
    assert not any(path.exists() for path in stale)


def test_make_run_summary_gives_results_time_and_next_steps(trained_project, monkeypatch):
    from digits.reporting.summary import summary

    monkeypatch.chdir(trained_project)
    cv = json.loads((trained_project / "metrics/cv.json").read_text())
    text = summary(301.4, Path("dvc_plots/index.html"))
    assert text.splitlines()[0] == "digits-dvc: baseline CNN, 1 epoch, on 300 SAMPLE training images"
    assert f"2-fold CV  {cv['accuracy_mean']:.2f} ± {cv['accuracy_std']:.2f} %" in text
    assert "wall time  5 min 01 s" in text and "plots      dvc_plots/index.html" in text
    assert "dvc exp run -S epochs=20" in text


def test_the_summary_describes_the_run_that_made_the_metrics_not_params_yaml(project, monkeypatch):
    from digits.reporting.summary import summary

    monkeypatch.chdir(project)
    (project / "params.yaml").write_text(
        (project / "params.yaml").read_text().replace("epochs: 1", "epochs: 7")
    )
    assert (
        summary(None, None).splitlines()[0]
        == "digits-dvc: baseline CNN, 1 epoch, on 300 SAMPLE training images"
    )
