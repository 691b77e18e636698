"""``dvc plots diff`` between two commits trained on different data sizes, as a reviewer sees it.

The data of every plot (both revisions, percent, one orientation), the Vega templates
rendered offline (integer epochs, a confusion matrix normalised per actual digit), and
the page DVC writes, drawn offline in headless Chromium: every plot drawn, both
revisions told apart in each.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, chromium, needs_chromium, run, screenshot
from revisions import BASE_LIMIT, HEAD_EPOCHS, HEAD_LIMIT, two_revisions

from digits.reporting.figures import MAX_WIDTH_PX

pytestmark = pytest.mark.timeout(900)

BASE, HEAD = "HEAD~1", "workspace"  # how DVC names the two revisions
# The plots dvc.yaml declares: the stages' plot outputs (each a plot, by path; the folder
# of PNGs one plot per image) and the top-level plots, by id.
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGE_PLOTS = [next(iter(p)) for stage in DVC_YAML["stages"].values() for p in stage.get("plots", [])]
VEGA = [next(iter(p)) for p in DVC_YAML["plots"]] + [p for p in STAGE_PLOTS if p.endswith(".csv")]
IMAGES = sorted(f"plots/images/{p.name}" for p in (ROOT / "plots/images").glob("*.png"))
PER_EPOCH = ["plots/cv/history.csv", "val_loss_per_fold", "plots/cv/mean_history.csv", "mean_loss"]
CONFUSION = "plots/test/predictions.csv"
# What the legends name each revision by: the revision, and the data it trained on.
LABELS = {BASE: f"{BASE} · {BASE_LIMIT} MNIST sample images"}
LABELS[HEAD] = f"{HEAD} · {HEAD_LIMIT} MNIST sample images"


@pytest.fixture(scope="module")
def repo(trained_project, tmp_path_factory) -> Path:
    return two_revisions(trained_project, tmp_path_factory)


@pytest.fixture(scope="module")
def plots(repo, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("plots-json")
    return json.loads(run(["dvc", "plots", "diff", BASE, "--json", "-o", str(out)], repo).stdout)


def section_id(name: str) -> str:
    """The id of a plot's section on the page DVC writes."""
    return name.replace("/", "_").replace(".", "_")


def vega(plots: dict, name: str) -> dict:
    (entry,) = plots["data"][name]
    return entry["content"]


def rows(plots: dict, name: str) -> list[dict]:
    return vega(plots, name)["data"]["values"]


def test_every_plot_holds_both_revisions(plots):
    assert "errors" not in plots, plots.get("errors")
    assert sorted(plots["data"]) == sorted(VEGA + IMAGES)
    assert len(IMAGES) == 4
    for name in VEGA:
        assert {row["rev"] for row in rows(plots, name)} == {BASE, HEAD}, name
    for name in IMAGES:
        assert sorted(e["revisions"][0] for e in plots["data"][name]) == sorted([BASE, HEAD]), name


def test_the_legends_name_the_data_each_revision_trained_on(plots):
    for name in VEGA:
        if name == CONFUSION:  # the test data: the same 1,000 images in both
            continue
        content = vega(plots, name)
        for row in rows(plots, name):
            assert row["data"] == LABELS[row["rev"]].split(" · ")[1], (name, row)
        assert content["transform"][0]["as"] == content["encoding"]["color"]["field"] == "revision", name


def test_accuracy_is_in_percent_per_fold_and_epoch_of_each_revision(plots):
    for name, column in (
        ("plots/cv/history.csv", "val_accuracy_pct"),
        ("plots/cv/mean_history.csv", "accuracy_pct"),
    ):
        values = [float(row[column]) for row in rows(plots, name)]
        assert 0 <= min(values) and max(values) <= 100 and max(values) > 1.5, (name, values)  # not 0..1
    for rev, epochs in ((BASE, ["1"]), (HEAD, [str(e) for e in range(1, HEAD_EPOCHS + 1)])):
        per_fold = {(r["fold"], r["epoch"]) for r in rows(plots, "plots/cv/history.csv") if r["rev"] == rev}
        assert per_fold == {(fold, epoch) for fold in ("1", "2") for epoch in epochs}, rev
        mean = {(r["split"], r["epoch"]) for r in rows(plots, "mean_loss") if r["rev"] == rev}
        assert mean == {(split, epoch) for split in ("train", "validation") for epoch in epochs}, rev


def test_every_plot_has_a_title_caption_and_named_axes(plots):
    import vl_convert

    for name in VEGA:
        svg = vl_convert.vegalite_to_svg(vega(plots, name))
        title = vega(plots, name)["title"]["text"]
        assert title != name and title in svg_text(svg, "title-text"), name
        assert svg_text(svg, "title-subtitle"), f"{name}: no caption"
        axes = re.findall(r"([XY])-axis titled '([^']*)'", svg)
        assert {axis for axis, _ in axes} == {"X", "Y"}, (name, axes)
        assert all(title not in ("x", "y") and "dvc" not in title for _, title in axes), (name, axes)
    assert vega(plots, "plots/cv/mean_history.csv")["encoding"]["y"]["title"] == "accuracy (%)"


def svg_text(svg: str, role: str) -> list[str]:
    """The texts of one kind of SVG element Vega draws (axis-label, legend-label, column-header...)."""
    return [
        text
        for group in re.findall(rf'class="mark-text role-{role}(?: [^"]*)?"(.*?)</g>', svg, re.S)
        for text in re.findall(r"<text[^>]*>(.*?)</text>", group)  # multi-line texts hold <tspan>s
    ]


def column_headers(svg: str) -> list[str]:
    """The headers of a faceted plot's panels (Vega draws them as titles)."""
    headers = svg[svg.index("role-column-header") : svg.index("role-column-footer")]
    return re.findall(r"Title text '([^']*)'", headers)


def axis_labels(svg: str, title: str) -> list[str]:
    axis = svg[svg.index(f"axis titled '{title}'") :]
    return svg_text(axis[: axis.index("role-axis-title")], "axis-label")


def test_epoch_axes_show_whole_epochs(plots):
    import vl_convert

    for name in PER_EPOCH:
        spec = vega(plots, name)
        assert axis_labels(vl_convert.vegalite_to_svg(spec), "epoch") == ["1", "2"], name
        # and with 25 epochs: whole numbers, about ten of them
        long = copy.deepcopy(spec)
        first = [row for row in long["data"]["values"] if row["epoch"] == "1"]
        long["data"]["values"] = [dict(row, epoch=str(e)) for e in range(1, 26) for row in first]
        labels = axis_labels(vl_convert.vegalite_to_svg(long), "epoch")
        assert (
            labels[0] == "1"
            and labels[-1] == "25"
            and 5 <= len(labels) <= 13
            and all(map(str.isdigit, labels))
        )


def test_confusion_matrix_is_percent_of_each_actual_digit_whatever_the_test_size(plots):
    """A small and a 20 times larger test set with the same error rates read the same."""
    import vl_convert

    spec = copy.deepcopy(vega(plots, CONFUSION))
    assert spec["spec"]["encoding"]["y"]["field"] == "actual"  # actual on the rows, as in the PNG
    assert spec["spec"]["encoding"]["x"]["field"] == "predicted"
    # digit 0: 4 of 5 right, 1 taken for a 6; digit 1: 5 of 5 right; digit 2: 199 of 200
    # right (99.5%, which must not read as 100). Then the same proportions x20.
    small = [(0, 0)] * 4 + [(0, 6)] + [(1, 1)] * 5 + [(2, 2)] * 199 + [(2, 3)]
    spec["data"]["values"] = [
        {"rev": rev, "actual": str(a), "predicted": str(p)}
        for rev, n in (("small", 1), ("large", 20))
        for a, p in small * n
    ]
    svg = vl_convert.vegalite_to_svg(spec)
    labels = svg_text(svg, "mark")
    assert sorted(labels) == sorted(["80.0", "20.0", "100", "99.5", "0.5"] * 2), labels
    assert sorted(column_headers(svg)) == ["large", "small"]
    # the same percent gets the same colour in both panels
    fills = re.findall(r'class="mark-rect role-mark[^"]*".*?</g>', svg, re.S)
    colours = [sorted(re.findall(r'fill="(#[0-9a-f]+)"', group)) for group in fills]
    assert colours and all(c == colours[0] for c in colours), colours


def sections(dom: str) -> dict[str, str]:
    """The page split into its plots: DVC gives each a ``<div id=...>``, in dvc.yaml's order."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div id="(\w+)"', dom)]
    ends = [start for start, _ in starts[1:]] + [len(dom)]
    return {name: dom[start:end] for (start, name), end in zip(starts, ends, strict=True)}


def legend(svg: str) -> dict[str, tuple[str, ...]]:
    """Legend label -> the colours its symbol is drawn in (a dash alone does not show on a dot)."""
    entries = re.findall(
        r'role-legend-symbol"[^>]*><path([^>]*)></path></g><g class="mark-text role-legend-label"[^>]*>'
        r"<text[^>]*>([^<]+)</text>",
        svg,
    )
    return {
        label: tuple(re.findall(r' (?:fill|stroke)="([^"]*)"', attributes)) for attributes, label in entries
    }


@needs_chromium
def test_headless_chromium_draws_every_plot_with_both_revisions_apart(repo, tmp_path):
    from PIL import Image

    run(["dvc", "plots", "diff", BASE, "-o", str(tmp_path / "page")], repo)
    page = tmp_path / "page" / "index.html"
    dom = chromium(page.as_uri(), tmp_path, "--dump-dom")
    found = sections(dom)
    assert sorted(found) == sorted(section_id(name) for name in VEGA + IMAGES)
    for name in VEGA:
        svg = found[section_id(name)]
        assert 'class="marks"' in svg, f"{name}: not drawn"
        assert re.search(r'class="mark-(line|symbol|rect) role-mark[^"]*"[^>]*><path', svg), (
            f"{name}: no data"
        )
        if name == CONFUSION:  # one panel per revision, headed by its name
            assert sorted(column_headers(svg)) == sorted([BASE, HEAD])
        else:  # one legend entry per revision, each in its own colour
            entries = legend(svg)
            assert set(LABELS.values()) <= set(entries), (name, entries)
            assert entries[LABELS[BASE]] != entries[LABELS[HEAD]], (name, entries)
    for name, section in found.items():
        if name.startswith("plots_images"):
            sources = re.findall(r'<p>([^<]+)</p>\s*<img src="([^"]+)"', section)
            assert sorted(rev for rev, _ in sources) == sorted([BASE, HEAD]), name
            for _, src in sources:
                with Image.open(page.parent / src) as image:
                    assert 400 <= image.width <= MAX_WIDTH_PX, (src, image.size)  # two fit 1,400 px

    shot = screenshot(page.as_uri(), tmp_path, size="1400,4500")  # the page a reviewer scrolls
    gray = np.asarray(Image.open(shot).convert("L"))
    top = gray[:1100]  # the Vega plots come first
    assert (top < 200).mean() > 0.02, f"the Vega plots look blank ({(top < 200).mean():.4f} ink)"
    assert (gray < 200).mean() > 0.02
