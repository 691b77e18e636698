"""``make review BASE=main``: what a change does to params, metrics and plots, as a report.

Writes ``review/report.md`` with the params diff, the metrics diff (CV and test
deltas up front) and the pipeline's Vega-Lite plots for both revisions rendered
to PNG offline (vl-convert), referenced from the report. A pull-request
workflow posts the report; here it runs from the command line:

    python -m digits.review [BASE] [--out review]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

from digits import cli
from digits.errors import PipelineError
from digits.files import atomic_dir
from digits.render import vegalite_to_png

# (metrics file, key, label) of the headline numbers.
HEADLINE = (
    ("metrics/cv.json", "accuracy_mean", "CV mean accuracy (%)"),
    ("metrics/cv.json", "accuracy_std", "CV std"),
    ("metrics/test.json", "accuracy", "test accuracy (%)"),
    ("metrics/test.json", "ensemble_accuracy", "fold-ensemble test accuracy (%)"),
)


def dvc(*args: str) -> str:
    """Run a dvc command; its stdout, or a :class:`PipelineError` with dvc's message."""
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise PipelineError(f"dvc {' '.join(args)} failed: {message[-1] if message else result.returncode}")
    return result.stdout


def headline(diff: dict) -> str:
    """Markdown table of the headline metrics: base, this change, delta."""
    rows = ["| metric | base | this change | delta |", "| --- | ---: | ---: | ---: |"]
    for path, key, label in HEADLINE:
        entry = diff.get(path, {}).get(key)
        if not entry:
            continue
        old, new, delta = entry.get("old"), entry.get("new"), entry.get("diff")
        cells = [f"{v:.2f}" if isinstance(v, (int, float)) else "—" for v in (old, new)]
        change = f"{delta:+.2f}" if isinstance(delta, (int, float)) else "—"
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {change} |")
    return "\n".join(rows) if len(rows) > 2 else "No metric changed."


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def render_plots(plots: dict, folder: Path) -> list[tuple[str, str]]:
    """Render each Vega-Lite plot of ``dvc plots diff --json`` to PNG; return (title, file) pairs."""
    rendered = []
    for name, entries in plots["data"].items():
        for entry in entries:
            if entry.get("type") != "vega":
                continue
            file = f"{slug(name)}.png"
            vegalite_to_png(entry["content"], folder / file)
            rendered.append((name, file))
    return rendered


def build_report(base: str, folder: Path) -> str:
    """Write the plot images into ``folder``; return the report's Markdown."""
    params = dvc("params", "diff", base, "--md").strip() or "No params changed."
    metrics_md = dvc("metrics", "diff", base, "--md", "--precision", "4").strip() or "No metric changed."
    diff = json.loads(dvc("metrics", "diff", base, "--json") or "{}")
    plots = json.loads(dvc("plots", "diff", base, "--json"))
    images = render_plots(plots, folder)
    parts = [
        f"# Review against `{base}`",
        "## Headline",
        headline(diff),
        "## Params",
        params,
        "## Metrics",
        metrics_md,
        "## Plots",
        f"Both revisions in each plot (`{base}` and the workspace), rendered offline.",
        *(f"### {title}\n\n![{title}]({file})" for title, file in images),
    ]
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits.review", description=__doc__.split("\n")[0])
    parser.add_argument("base", nargs="?", default="main", help="revision to compare with (default: main)")
    parser.add_argument("--out", type=Path, default=Path("review"), help="report folder (default: review)")
    args = parser.parse_args(argv)
    with atomic_dir(args.out) as tmp:
        (tmp / "report.md").write_text(build_report(args.base, tmp))
    print(f"review: {args.out / 'report.md'}")


if __name__ == "__main__":
    cli.run(main)
