"""The modern recipe: one documented ``dvc exp run`` line away, and deterministic (on tiny data)."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, assert_same_fits, recipe_params, run, stages_run

from digits.core.lock import locked_params
from digits.core.params import fields, read_yaml
from digits.reporting.recipes import (
    RECIPES,
    command,
    exp_run_args,
    explored_table,
    minutes,
    overrides,
    results_row,
)
from digits.training.fit import FitTask, fit


def test_the_readme_documents_the_recipe_s_command_line():
    line = command("modern")
    assert line.startswith("dvc exp run -S model.arch=modern -S ")
    assert line in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_sets_declared_keys_to_valid_values(name):
    assert set(RECIPES[name]) <= set(fields())
    params = recipe_params(name).model_dump()
    for key, value in RECIPES[name].items():
        section, _, leaf = key.rpartition(".")
        assert (params[section] if section else params)[leaf] == value
    assert params["seed"] == 1 and params["cv"]["folds"] == 5  # the same protocol as the tutorial


def test_the_command_line_writes_values_as_dvc_reads_them():
    assert exp_run_args({"data.limit": None, "model.arch": "modern", "model.dropout": 0.25}) == [
        "-S", "data.limit=null", "-S", "model.arch=modern", "-S", "model.dropout=0.25",
    ]  # fmt: skip


def test_the_recipe_trains_and_is_deterministic_augmentation_included(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(256) % 10]
    params = recipe_params("modern", {"epochs": 2})  # a warm-up epoch, then a cosine one
    task = FitTask("fold 1/2", seed=3, train_index=np.arange(0, 256, 2), val_index=np.arange(1, 256, 2))
    first, second = fit(task, x, y, params), fit(task, x, y, params)
    assert len(first.history["loss"]) == 2 and all(np.isfinite(first.history["loss"]))
    assert_same_fits([first], [second], tmp_path)
    other = fit(FitTask("fold 1/2", 4, task.train_index, task.val_index), x, y, params)
    assert other.history["loss"] != first.history["loss"]  # the seed reaches weights and augmentation


def test_the_recipe_is_one_dvc_exp_run_away(project):
    # The documented line, on the small project and for 2 epochs.
    settings = overrides("modern", {"epochs": 2})
    result = run(["dvc", "exp", "run", "-n", "modern", *exp_run_args(settings)], project)
    assert stages_run(result.stdout) == ["validate", "train", "evaluate", "plot"]
    # A dropped -S shows here: in the params the experiment recorded, and in those train ran with.
    recorded = read_yaml((project / "params.yaml").read_text())
    trained_with = locked_params("train", project / "dvc.lock")
    for ran in (recorded, trained_with):
        for key, value in settings.items():
            section, _, leaf = key.rpartition(".")
            assert (ran[section] if section else ran)[leaf] == value, key
    # It trained: every fold's training loss fell. Its CV says little on 150 images a fold
    # (8 to 17% here, by the moving average and epochs): the recipe needs full MNIST.
    curves = pd.read_csv(project / "plots/cv/history.csv")
    history = curves.pivot(index="fold", columns="epoch", values="loss")
    assert len(history) == 2 and (history[2] < history[1]).all()
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert 0 < cv["accuracy_mean"] <= 100
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    experiments = [exp for rev in shown for exp in (rev.get("experiments") or [])]
    assert any(exp.get("name") == "modern" for exp in experiments)


def test_the_readme_shows_the_recorded_results_of_the_recipe():
    readme = (ROOT / "README.md").read_text()
    record = json.loads((ROOT / "results/modern/metrics.json").read_text())
    assert record["cv"]["data"] == {"source": "mnist", "images": 60_000}
    assert record["command"] == command("modern")  # the recorded run is the documented recipe
    wall = minutes(record["wall_seconds"])
    assert results_row("**modern** (the recipe)", record["cv"], record["test"], wall) in readme
    rows = list(csv.DictReader((ROOT / "results/modern/explored.csv").open()))
    assert explored_table(rows) in readme
    assert "test" not in ",".join(rows[0])  # variants are chosen on CV alone
    # Each row is the recipe with its settings on top, so exactly one row is the recipe itself,
    # and it has the best CV of the variants run on its CPU, the recorded run's (times compare
    # only on one CPU type; the README says how the recipe's time stands against 20 minutes).
    (own,) = [row["cpu"] for row in rows if row["settings"] == "(the recipe)"]
    assert own.startswith(record["machine"]["cpu"])
    chosen = max((row for row in rows if row["cpu"] == own), key=lambda row: float(row["cv_mean"]))
    assert chosen["settings"] == "(the recipe)" and float(chosen["epochs"]) == RECIPES["modern"]["epochs"]
    assert float(chosen["cv_mean"]) == round(record["cv"]["accuracy_mean"], 4)
    recorded = read_yaml((ROOT / "results/modern/params.yaml").read_text())
    for key, value in RECIPES["modern"].items():
        section, _, leaf = key.rpartition(".")
        assert (recorded[section] if section else recorded)[leaf] == value
