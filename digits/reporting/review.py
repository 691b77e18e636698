"""``make review BASE=main``: what a change does to the model, in a report read at a glance.

Writes ``review/report.md``. Its first line is the verdict: the CV accuracy (mean and
std over folds, what models are selected on) and its change against BASE, or, when the
two revisions trained or tested on different data, that their metrics are not
comparable and why. Then the headline table (CV first, the test accuracies as the
held-out check, the data each side used), the params diff, every metric, and every plot
of ``dvc plots diff`` as PNG next to the report: the Vega plots rendered offline
(vl-convert), both revisions in each, and the pipeline's own images side by side. The
pull-request workflow posts it with CML, which uploads the images; locally:

    python -m digits.reporting.review [BASE] [--out review]

Only dvc and vl-convert are needed (requirements-review.lock), not TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from digits.core import cli
from digits.core.errors import PipelineError
from digits.core.layout import CV_METRICS, TEST_METRICS
from digits.data import data_label
from digits.reporting.render import vegalite_to_png

MANIFEST = ".digits-review"  # in the report folder: the files this command wrote there
WORKSPACE = "workspace"  # how DVC names the revision under review
CV, TEST = str(CV_METRICS), str(TEST_METRICS)
# (metrics file, key, label) of the headline rows, in order: what models are selected on first.
HEADLINE = (
    (CV, "accuracy_mean", "**CV accuracy (%)**, mean over folds"),
    (CV, "accuracy_std", "CV accuracy std over folds (points)"),
    (TEST, "accuracy", "test accuracy (%), final model: the held-out check"),
    (TEST, "ensemble_accuracy", "test accuracy (%), fold ensemble"),
)
# (metrics file, label) of the data each revision used, recorded in its metrics.
DATA = ((CV, "training data"), (TEST, "test data"))


def dvc(*args: str) -> str:
    """Run a dvc command; its stdout, or a :class:`PipelineError` with dvc's message."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise PipelineError(f"dvc {' '.join(args)} failed: {message[-1] if message else result.returncode}")
    return result.stdout


def value(diff: dict, path: str, key: str, side: str) -> object:
    """One side ("old": base, "new": this change) of a ``dvc metrics diff --all --json`` entry."""
    return diff.get(path, {}).get(key, {}).get(side)


def data_used(diff: dict, path: str, side: str) -> str | None:
    """ "60,000 full MNIST images", from the ``data`` a stage recorded in its metrics; None if unknown."""
    source, images = value(diff, path, "data.source", side), value(diff, path, "data.images", side)
    if source is None or not isinstance(images, int):
        return None
    return data_label({"source": source, "images": images})


def data_differences(diff: dict, base: str) -> list[str]:
    """Why the two revisions' metrics are not comparable: one line per dataset that differs."""
    differences = []
    for path, label in DATA:
        old, new = data_used(diff, path, "old"), data_used(diff, path, "new")
        if old and new and old != new:
            differences.append(f"{label}: {old} in `{base}`, {new} in this change")
    return differences


def number(v: object, unit: str = "") -> str:
    return f"{v:.2f}{unit}" if isinstance(v, (int, float)) else "—"


def folds(diff: dict, side: str) -> int:
    """How many folds a side's CV had: its ``fold_accuracy.fold_<k>`` entries."""
    return sum(key.startswith("fold_accuracy.") and side in entry for key, entry in diff.get(CV, {}).items())


def verdict(diff: dict, base: str) -> str:
    """The report's first line: the CV accuracy and its change, or why the metrics are not comparable."""
    differences = data_differences(diff, base)
    if differences:
        return (
            f"**⚠️ Metrics not comparable with `{base}`: the two revisions used different data** "
            f"({'; '.join(differences)}). The differences below come from the data, not from the code "
            "or params under review: train both on the same data (`data.source`, `data.limit`) to compare "
            "them."
        )
    mean, std = (value(diff, CV, key, "new") for key in ("accuracy_mean", "accuracy_std"))
    if not isinstance(mean, (int, float)):
        return f"**No CV metrics in this change to compare with `{base}`.**"
    old = value(diff, CV, "accuracy_mean", "old")
    if not isinstance(old, (int, float)):
        against = f"`{base}` has no CV metrics to compare"
    elif round(mean - old, 2):
        against = f"{mean - old:+.2f} points against `{base}`"
    else:
        against = f"unchanged against `{base}`"
    line = f"**CV accuracy {number(mean, '%')} ± {number(std)}, {against}**"
    line += f" (mean ± std over {folds(diff, 'new')} folds)"
    test, old_test = (value(diff, TEST, "accuracy", side) for side in ("new", "old"))
    if isinstance(test, (int, float)):
        change = f", {test - old_test:+.2f}" if isinstance(old_test, (int, float)) else ""
        line += f"; test accuracy {number(test, '%')}{change}, the held-out check"
    return line + "."


def headline(diff: dict, base: str) -> str:
    """Markdown table of the headline metrics and the data each revision used."""
    comparable = not data_differences(diff, base)
    rows = [f"| | `{base}` | this change | change |", "| --- | ---: | ---: | ---: |"]
    for path, key, label in HEADLINE:
        old, new = (value(diff, path, key, side) for side in ("old", "new"))
        if old is None and new is None:
            continue
        if not comparable:
            change = "not comparable"
        elif isinstance(old, (int, float)) and isinstance(new, (int, float)):
            change = f"{new - old:+.2f}"
        else:
            change = "—"
        rows.append(f"| {label} | {number(old)} | {number(new)} | {change} |")
    for path, label in DATA:
        old, new = (data_used(diff, path, side) or "—" for side in ("old", "new"))
        rows.append(f"| {label} | {old} | {new} | {'same' if old == new else '**different**'} |")
    return "\n".join(rows)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def plot_title(name: str, content: dict) -> str:
    title = content.get("title", name)
    return (title.get("text") if isinstance(title, dict) else title) or name


def render_plots(plots: dict, base: str, folder: Path) -> list[str]:
    """Each plot of ``dvc plots diff --json`` as a Markdown section, its PNGs written into ``folder``.

    Vega plots hold both revisions and are rendered to one PNG each; an image plot
    comes once per revision, and the sections show them side by side, ``base`` first.
    """
    sections = []
    for name, entries in plots["data"].items():
        vega = [entry for entry in entries if entry.get("type") == "vega"]
        images = {entry["revisions"][0]: entry["url"] for entry in entries if entry.get("type") == "image"}
        for entry in vega:
            file = f"{slug(name)}.png"
            vegalite_to_png(entry["content"], folder / file)
            title = plot_title(name, entry["content"])
            sections.append(f"#### {title}\n\n![{title}]({file})")
        if images:
            revisions = sorted(images, key=lambda rev: (rev != base, rev == WORKSPACE, rev))
            cells = []
            for rev in revisions:
                file = f"{slug(rev)}_{slug(Path(name).stem)}.png"
                shutil.copyfile(images[rev], folder / file)
                cells.append(f"![{name}, {rev}]({file})")
            header = " | ".join(
                f"`{rev}`" + (" (this change)" if rev == WORKSPACE else "") for rev in revisions
            )
            sections.append(
                f"#### {name}\n\n| {header} |\n|{' --- |' * len(revisions)}\n| {' | '.join(cells)} |"
            )
    for error in plots.get("errors", []):
        sections.append(f"Not drawn: `{error['name']}` in `{error['rev']}`: {error['msg']}")
    return sections


def build_report(base: str, folder: Path) -> str:
    """Write the plot images into ``folder``; return the report's Markdown."""
    params = dvc("params", "diff", base, "--md").strip() or "No params changed."
    metrics_md = dvc("metrics", "diff", base, "--md", "--precision", "4").strip() or "No metric changed."
    diff = json.loads(dvc("metrics", "diff", base, "--all", "--json") or "{}")
    plots = json.loads(dvc("plots", "diff", base, "--json", "--out", str(folder / ".dvc_plots")))
    sections = render_plots(plots, base, folder)
    shutil.rmtree(folder / ".dvc_plots", ignore_errors=True)
    parts = [
        verdict(diff, base),
        f"## Review against `{base}`",
        f"This change (`{WORKSPACE}` in the plots) against `{base}`. Models are selected on cross-validation "
        "(CV); the test accuracy is the held-out check.",
        headline(diff, base),
        "### Params",
        params,
        "### All metrics",
        metrics_md,
        "### Plots",
        f"Every plot shows both revisions: `{base}` and `{WORKSPACE}` (this change), one colour each.",
        *sections,
    ]
    return "\n\n".join(parts) + "\n"


def publish(out: Path, build: Callable[[Path], str]) -> None:
    """Write the report (``build`` fills a folder with images and returns the Markdown) into ``out``.

    ``out`` is created, or it is a folder this command made before: then only the files it
    wrote last time (listed in ``out/.digits-review``) are replaced. Never anything else: a
    folder of other files (``docs``, ``.``) is refused.
    """
    manifest = out / MANIFEST
    if out.exists() and not (out.is_dir() and (manifest.is_file() or not any(out.iterdir()))):
        raise PipelineError(
            f"--out {out}: exists and was not made by this command; give a new folder (default: review)"
        )
    # Built beside it first: a failed build (an unknown revision, say) leaves no empty ``out``.
    beside = next(parent for parent in out.absolute().parents if parent.is_dir())
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".tmp", dir=beside) as work:
        folder = Path(work)
        (folder / "report.md").write_text(build(folder))
        out.mkdir(parents=True, exist_ok=True)
        written = sorted(path.name for path in folder.iterdir() if path.is_file())
        previous = manifest.read_text().split() if manifest.is_file() else []
        for name in set(previous) - set(written):
            (out / Path(name).name).unlink(missing_ok=True)
        for name in written:
            (folder / name).replace(out / name)
        manifest.write_text("\n".join(written) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m digits.reporting.review", description=__doc__.split("\n")[0]
    )
    parser.add_argument("base", nargs="?", default="main", help="revision to compare with (default: main)")
    parser.add_argument("--out", type=Path, default=Path("review"), help="report folder (default: review)")
    args = parser.parse_args(argv)
    publish(args.out, lambda folder: build_report(args.base, folder))
    print(f"review: {args.out / 'report.md'}")


def run() -> None:
    """The ``digits-review`` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
