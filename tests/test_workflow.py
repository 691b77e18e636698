"""The pull-request workflow cannot run here: lint it (actionlint, with shellcheck for its scripts),
and check that its review job installs only what review needs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# Both come with the test requirements, next to this interpreter.
BIN = Path(sys.executable).parent
ACTIONLINT = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
SHELLCHECK = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")

needs_actionlint = pytest.mark.skipif(
    not (ACTIONLINT and SHELLCHECK), reason="needs actionlint and shellcheck (requirements-dev.txt)"
)


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    """actionlint on ``files``, with shellcheck on every ``run:`` script; no config, no color."""
    return subprocess.run(
        [ACTIONLINT, "-no-color", "-shellcheck", SHELLCHECK, "-pyflakes", "", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


@needs_actionlint
@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_no_actionlint_finding(workflow):
    result = actionlint(workflow)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@needs_actionlint
def test_actionlint_catches_injection_and_shell_mistakes(tmp_path):
    workflow = tmp_path / ".github" / "workflows" / "bad.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  bad:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
        "      - run: rm -rf $TARGET/build\n"
    )
    findings = actionlint(workflow).stdout
    assert "potentially untrusted" in findings  # the title goes into the script unquoted by shell
    assert "SC2086" in findings  # shellcheck ran on the run: script


def review_job() -> dict:
    return yaml.safe_load((ROOT / ".github/workflows/review.yml").read_text())["jobs"]["review"]


def test_review_job_posts_the_report_with_cml_images_included():
    scripts = "\n".join(step.get("run", "") for step in review_job()["steps"])
    assert "make review" in scripts
    assert "@dvcorg/cml@" in scripts  # pinned
    assert "cml comment update review/report.md --publish" in scripts
    assert "--watermark-title=" in scripts  # one comment, updated on each push


def test_make_review_installs_only_the_review_lock():
    # A dry run with a virtual environment that does not exist: what `make review` installs.
    result = subprocess.run(
        ["make", "-n", "review", "VENV=.venv-dry-run"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert set(re.findall(r"--requirement (\S+)", result.stdout)) == {"requirements-review.lock"}


def pins(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / lock).read_text(), re.M))


def test_review_lock_is_dvc_and_the_renderer_at_the_full_locks_versions():
    review, full = pins("requirements-review.lock"), pins("requirements.lock")
    assert {"dvc", "vl-convert-python"} <= set(review)
    assert not {"tensorflow-cpu", "keras", "pandas", "matplotlib"} & set(review)
    assert {name: full.get(name) for name in review} == review  # one version of each package
