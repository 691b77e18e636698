"""The pipeline end to end, through DVC, on a copy of the project in a temporary git repo.

Small and real: the bundled sample, a few hundred images, 2 folds, 1 epoch. The tests
share one repository and build on each other in file order (a second run, experiments,
a second commit, then plots and the review across the two commits), as a user would.
"""

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
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


def plots_json(project, *args: str) -> dict:
    return json.loads(run(["dvc", "plots", *args, "--json"], project).stdout)["data"]


def test_plots_show_every_fold_and_every_figure(project):
    data = plots_json(project, "show")
    for name in ("Validation accuracy per fold", "Validation loss per fold"):
        rows = data[name][0]["content"]["data"]["values"]
        assert {str(row["fold"]) for row in rows} == {"1", "2"}
    assert {
        str(r["epoch"])
        for r in data["Train vs validation accuracy (mean over folds)"][0]["content"]["data"]["values"]
    } == {"1", "2"}
    assert data["Test confusion matrix"][0]["type"] == "vega"
    images = sorted(name for name in data if name.startswith("plots/images/"))
    assert [Path(name).name for name in images] == [
        "confusion_matrix.png",
        "fold_scores.png",
        "learning_curves.png",
        "misclassified.png",
    ]


def test_plots_diff_holds_both_revisions(project):
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "two epochs"], project)
    data = plots_json(project, "diff", "HEAD~1")
    plot = data["Validation accuracy per fold"][0]
    assert len(plot["revisions"]) == 2
    by_rev = {}
    for row in plot["content"]["data"]["values"]:
        by_rev.setdefault(row["rev"], set()).add(str(row["epoch"]))
    assert sorted(map(len, by_rev.values())) == [1, 2]  # 1 epoch on HEAD~1, 2 on HEAD


def test_plots_html_loads_nothing_from_the_network(project, tmp_path):
    run(["dvc", "plots", "show", "-o", str(tmp_path / "out")], project)
    html = (tmp_path / "out" / "index.html").read_text()
    assert "vegaEmbed(" in html and len(html) > 500_000  # the libraries are inlined
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "cdn.jsdelivr" not in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium (installed by .ci/run)")
def test_headless_chromium_draws_the_plots_offline(project, tmp_path):
    from PIL import Image

    run(["dvc", "plots", "show", "-o", str(tmp_path / "out")], project)
    shot = tmp_path / "shot.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1400",
        "--virtual-time-budget=10000",
        f"--screenshot={shot}",
    ]
    run([CHROMIUM, *flags, (tmp_path / "out" / "index.html").as_uri()], project)
    gray = np.asarray(Image.open(shot).convert("L"))
    drawn = (gray < 200).mean()  # share of the page that is ink: axes, lines, labels
    assert drawn > 0.01, f"page looks blank ({drawn:.4f} drawn)"


def test_review_report_has_deltas_and_rendered_plots(project):
    result = run([sys.executable, "-m", "digits.review", "HEAD~1", "--out", "review"], project)
    assert "review/report.md" in result.stdout
    report = (project / "review" / "report.md").read_text()
    assert "# Review against `HEAD~1`" in report
    assert re.search(r"\| CV mean accuracy \(%\) \| [\d.]+ \| [\d.]+ \| [+-][\d.]+ \|", report)
    assert re.search(r"\| test accuracy \(%\) \| [\d.]+ \| [\d.]+ \| [+-][\d.]+ \|", report)
    assert "epochs" in report  # the params diff
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", report)
    assert len(images) >= 5
    for image in images:
        assert (project / "review" / image).read_bytes().startswith(b"\x89PNG")
