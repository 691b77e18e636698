"""The review report (``make review``): its first line, its headline, every plot as a PNG.

On two real commits trained on different data sizes (the first line must say the
metrics are not comparable, and why), and on made-up metrics diffs for the cases a
fixture would need more trainings for.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run
from revisions import BASE_LIMIT, HEAD_LIMIT, two_revisions

from digits.reporting.review import headline, verdict

pytestmark = pytest.mark.timeout(900)

BASE = "HEAD~1"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def repo(trained_project, tmp_path_factory) -> Path:
    return two_revisions(trained_project, tmp_path_factory)


@pytest.fixture(scope="module")
def report(repo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("review") / "review"
    result = run([sys.executable, "-m", "digits.reporting.review", BASE, "--out", str(out)], repo)
    assert f"review: {out / 'report.md'}" in result.stdout
    return out / "report.md"


def test_first_line_says_the_metrics_are_not_comparable_and_why(report):
    first = report.read_text().splitlines()[0]
    assert first.startswith(f"**⚠️ Metrics not comparable with `{BASE}`")
    assert (
        f"training data: {BASE_LIMIT} MNIST sample images in `{BASE}`, "
        f"{HEAD_LIMIT} MNIST sample images in this change" in first
    )
    assert "test data" not in first  # both tested on the same 1,000 MNIST sample images


def table_rows(markdown: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("|")
    ]


def test_headline_leads_with_cv_and_marks_every_change_not_comparable(report):
    text = report.read_text()
    headline_rows = table_rows(text.split("### Params")[0])
    labels = [row[0] for row in headline_rows[2:]]
    assert labels[0] == "**CV accuracy (%)**, mean over folds"
    assert labels[1] == "CV accuracy std over folds (points)"
    assert labels[2] == "test accuracy (%), final model: the held-out check"
    for row in headline_rows[2:6]:
        assert re.fullmatch(r"\d+\.\d\d", row[1]) and re.fullmatch(r"\d+\.\d\d", row[2]), row
        assert row[3] == "not comparable", row
    data = {row[0]: row[1:] for row in headline_rows[6:]}
    assert data["training data"] == [
        f"{BASE_LIMIT} MNIST sample images",
        f"{HEAD_LIMIT} MNIST sample images",
        "**different**",
    ]
    assert data["test data"] == ["1,000 MNIST sample images", "1,000 MNIST sample images", "same"]
    assert "| params.yaml | data.limit |" in re.sub(r" +", " ", text)  # the params diff says what changed


def test_report_shows_every_plot_as_a_png_beside_it(report):
    text = report.read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    # 6 Vega plots with both revisions in each, and the 4 pipeline PNGs once per revision
    assert len(images) == 6 + 4 * 2 == len(set(images))
    for image in images:
        assert "/" not in image and (report.parent / image).read_bytes().startswith(PNG_MAGIC), image
    assert "#### Validation accuracy per fold" in text and "#### Test confusion matrix, final model" in text
    assert f"| `{BASE}` | `workspace` (this change) |" in text  # base first, then this change
    assert not (report.parent / ".dvc_plots").exists()


@pytest.fixture(scope="session")
def review_env(tmp_path_factory) -> Path:
    """A virtual environment with exactly what the review job installs: requirements-review.lock."""
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = tmp_path_factory.mktemp("review-env") / "venv"
    run([uv, "venv", "--quiet", "--python", sys.executable, str(env)], ROOT)
    python = str(env / "bin" / "python")
    run([uv, "pip", "install", "--quiet", "--python", python, "-r", "requirements-review.lock"], ROOT)
    run([uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "-e", "."], ROOT)
    return env


def test_review_runs_in_the_review_jobs_own_environment(repo, review_env, tmp_path):
    """What the review job installs (requirements-review.lock) is enough: no TensorFlow, pandas, ..."""
    python = review_env / "bin" / "python"
    missing = run([str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"], repo)
    assert missing.stdout.strip() == "None"  # truly the review job's set, not the full one
    path = f"{review_env / 'bin'}:{os.environ['PATH']}"  # review runs this environment's dvc
    run([str(python), "-m", "digits.reporting.review", BASE, "--out", str(tmp_path / "out")], repo, PATH=path)
    assert (tmp_path / "out" / "report.md").read_text().startswith("**")


def diff(cv: tuple, test: tuple, data: tuple = (("mnist", 60000), ("mnist", 60000))) -> dict:
    """A ``dvc metrics diff --all --json``: cv = (old mean, new mean, old std, new std), test = (old, new)."""
    (old_source, old_images), (new_source, new_images) = data

    def entry(old, new):
        return {"old": old, "new": new} if old is not None else {"new": new}

    return {
        "metrics/cv.json": {
            "accuracy_mean": entry(cv[0], cv[1]),
            "accuracy_std": entry(cv[2], cv[3]),
            "fold_accuracy.fold_1": entry(cv[0], cv[1]),
            "fold_accuracy.fold_2": entry(cv[0], cv[1]),
            "data.source": entry(old_source, new_source),
            "data.images": entry(old_images, new_images),
        },
        "metrics/test.json": {
            "accuracy": entry(test[0], test[1]),
            "data.source": entry(old_source, new_source),
            "data.images": entry(10000 if old_images else None, 10000),
        },
    }


def test_verdict_leads_with_the_cv_change_then_test_as_the_held_out_check():
    line = verdict(diff((98.64, 98.70, 0.10, 0.07), (98.65, 98.80)), "main")
    assert line == (
        "**CV accuracy 98.70% ± 0.07, +0.06 points against `main`** (mean ± std over 2 folds); "
        "test accuracy 98.80%, +0.15, the held-out check."
    )
    assert "unchanged against `main`" in verdict(diff((98.64, 98.64, 0.1, 0.1), (98.65, 98.65)), "main")


def test_verdict_and_headline_when_the_base_has_no_metrics():
    first_pr = diff((None, 98.70, None, 0.07), (None, 98.80), data=((None, None), ("mnist", 60000)))
    assert "`main` has no CV metrics to compare" in verdict(first_pr, "main")
    assert "| **CV accuracy (%)**, mean over folds | — | 98.70 | — |" in headline(first_pr, "main")


def test_a_sample_run_against_full_mnist_is_not_comparable():
    """The issue's case: a sample run shows -6.31 against full-MNIST main, and must say why first."""
    sample = diff((98.64, 92.33, 0.10, 0.80), (98.65, 92.10), data=(("mnist", 60000), ("sample", 4000)))
    sample["metrics/test.json"]["data.images"] = {"old": 10000, "new": 1000}
    line = verdict(sample, "main")
    assert line.startswith("**⚠️ Metrics not comparable with `main`")
    assert (
        "training data: 60,000 full MNIST images in `main`, 4,000 MNIST sample images in this change" in line
    )
    assert "test data: 10,000 full MNIST images in `main`, 1,000 MNIST sample images in this change" in line
    assert "-6.31" not in headline(sample, "main") and "not comparable" in headline(sample, "main")


def fake_report(folder: Path) -> str:
    (folder / "curves.png").write_bytes(b"\x89PNG")
    return "# report\n"


def test_out_never_deletes_what_review_did_not_create(tmp_path):
    from digits.core.errors import PipelineError
    from digits.reporting.review import publish

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("mine")
    for out in (docs, tmp_path):  # `--out docs`, `--out .`
        with pytest.raises(
            PipelineError, match=r"exists and was not made by this command; give a new folder"
        ):
            publish(out, fake_report)
    assert (docs / "guide.md").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "docs"
    ]

    out = tmp_path / "review"
    publish(out, fake_report)
    assert sorted(p.name for p in out.iterdir()) == [".digits-review", "curves.png", "report.md"]
    (out / "notes.md").write_text("a reviewer's own notes")  # added by hand: survives the next report
    publish(out, lambda folder: "# report without images\n")
    assert sorted(p.name for p in out.iterdir()) == [".digits-review", "notes.md", "report.md"]
    assert (out / "report.md").read_text() == "# report without images\n"


def test_a_failed_report_leaves_no_out_folder(tmp_path):
    from digits.core.errors import PipelineError
    from digits.reporting.review import publish

    def unknown_revision(folder: Path) -> str:
        raise PipelineError("dvc: unknown revision 'nosuchrev'")

    with pytest.raises(PipelineError, match="nosuchrev"):
        publish(tmp_path / "reports" / "review", unknown_revision)
    assert list(tmp_path.iterdir()) == []
