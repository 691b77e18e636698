"""The pipeline end to end, through DVC, on a copy of the project in a temporary git repo.

Small and real: the bundled sample, a few hundred images, 2 folds, 1 epoch. The tests
share one repository and build on each other in file order (a second run, experiments,
then plots), as a user would. Plots and the review across two commits: test_plots_diff.py
and test_review.py.
"""

import json
import re

import pytest
from conftest import copy_project, run

pytestmark = pytest.mark.timeout(600)

SMALL = dict(data__source="sample", data__limit=300, epochs=1, cv__folds=2, cv__n_jobs=2)


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    repo = copy_project(tmp_path_factory.mktemp("project"), **SMALL)
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["validate", "download", "preprocess", "train", "evaluate", "plot"]
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "first run"], repo)
    return repo


def test_repro_writes_every_output(project):
    cv = json.loads((project / "metrics/cv.json").read_text())
    test = json.loads((project / "metrics/test.json").read_text())
    assert cv["data"] == {"source": "sample", "images": 300}
    assert set(cv["fold_accuracy"]) == {"fold_1", "fold_2"}
    assert 10 < cv["accuracy_mean"] <= 100 and 10 < test["accuracy"] <= 100
    assert test["data"] == {"source": "sample", "images": 1000}
    for path in (
        "models/model.keras",
        "models/folds/fold_1.keras",
        "models/folds/fold_2.keras",
        "plots/images/learning_curves.png",
        "plots/images/confusion_matrix.png",
    ):
        assert (project / path).stat().st_size > 1000, path
    assert len((project / "plots/test/predictions.csv").read_text().splitlines()) == 1001
    # metrics and plot data are in git, not only in the DVC cache
    tracked = run(["git", "ls-files", "metrics", "plots"], project).stdout.split()
    assert "metrics/cv.json" in tracked and "plots/cv/history.csv" in tracked


def test_second_repro_does_nothing(project):
    result = run(["dvc", "repro"], project)
    assert stages_run(result.stdout) == []
    assert "didn't change" in result.stdout or "up to date" in result.stdout


def test_same_params_give_byte_identical_metrics(project):
    before = {name: (project / name).read_bytes() for name in ("metrics/cv.json", "metrics/test.json")}
    run(["dvc", "repro", "-f", "-s", "train"], project)
    run(["dvc", "repro", "-f", "-s", "evaluate"], project)
    for name, data in before.items():
        assert (project / name).read_bytes() == data, name


def test_plot_param_reruns_only_plot(project):
    result = run(["dvc", "exp", "run", "-S", "plot.misclassified=6"], project)
    assert stages_run(result.stdout) == ["validate", "plot"]


def test_epochs_experiment_reruns_train_evaluate_plot_and_is_listed(project):
    result = run(["dvc", "exp", "run", "-n", "two-epochs", "-S", "epochs=2"], project)
    assert stages_run(result.stdout) == ["validate", "train", "evaluate", "plot"]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    names = [exp["name"] for exp in experiments]
    assert "two-epochs" in names
    data = next(e for e in experiments if e["name"] == "two-epochs")["revs"][0]["data"]
    metrics = data["metrics"]
    assert "accuracy_mean" in metrics["metrics/cv.json"]["data"]
    assert "ensemble_accuracy" in metrics["metrics/test.json"]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2


def test_misspelled_param_stops_the_stage_with_one_line(project):
    params = (project / "params.yaml").read_text()
    # DVC refuses `-S epoch=3` itself, but `-S +epoch=3` (or a hand edit) adds the key.
    result = run(["dvc", "exp", "run", "-S", "+epoch=3"], project, check=False)
    (project / "params.yaml").write_text(params)
    assert result.returncode != 0
    assert "params.yaml: unknown key 'epoch'; did you mean epochs?" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_plots_html_loads_nothing_from_the_network(project, tmp_path):
    run(["dvc", "plots", "show", "-o", str(tmp_path / "out")], project)
    html = (tmp_path / "out" / "index.html").read_text()
    assert "vegaEmbed(" in html and len(html) > 500_000  # the libraries are inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "cdn.jsdelivr" not in html
