"""dvc.yaml tells the truth: each stage depends on exactly the code it runs and the params it reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from digits import layout
from digits.params import fields

PACKAGES = ("digits", "stages")
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from digits import cli`
    return {name for name in found if name.split(".")[0] in PACKAGES}


def import_closure(module: str) -> set[str]:
    """The project files that running ``python -m module`` executes, packages' __init__ included."""
    files: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]))
            if path and path not in files:
                files.add(path)
                todo.extend(imported_modules(path))
    return {path.relative_to(ROOT).as_posix() for path in files}


def code_deps(stage: dict) -> set[str]:
    return {dep for dep in stage["deps"] if dep.endswith(".py")}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_depends_on_exactly_the_code_it_runs(name):
    stage = STAGES[name]
    module = re.fullmatch(r"python -m ([\w.]+)", stage["cmd"]).group(1)
    closure = import_closure(module)
    assert f"{module.replace('.', '/')}.py" in closure
    declared = code_deps(stage)
    assert not closure - declared, f"{name}: runs but does not depend on {sorted(closure - declared)}"
    assert not declared - closure, f"{name}: depends on but does not run {sorted(declared - closure)}"


def test_import_closure_follows_imports_inside_functions(tmp_path):
    # digits.training imports digits.model inside fit: the closure must still see it.
    assert "digits/model.py" in import_closure("digits.training")
    assert "digits/model.py" not in import_closure("digits.params")


def test_a_module_edit_reruns_only_the_stages_that_run_it():
    runs = {name: code_deps(stage) for name, stage in STAGES.items()}
    assert [name for name, deps in runs.items() if "digits/evaluation.py" in deps] == ["evaluate"]
    assert [name for name, deps in runs.items() if "digits/sources.py" in deps] == ["validate", "download"]
    assert "digits/model.py" not in runs["preprocess"] | runs["plot"]


def test_every_artifact_path_is_declared_in_dvc_yaml_and_the_other_way_round():
    declared = {
        next(iter(out)) if isinstance(out, dict) else out
        for stage in STAGES.values()
        for out in stage["outs"]
    }
    paths = {str(value) for value in vars(layout).values() if isinstance(value, Path)}
    assert paths == declared


def test_every_output_survives_a_failed_run():
    # DVC deletes a stage's outputs before running it unless they persist.
    for name, stage in STAGES.items():
        for out in stage["outs"]:
            path, options = next(iter(out.items()))
            assert options.get("persist") is True, f"{name}: {path} is not persist: true"


def test_stages_read_only_declared_params():
    # A key, or a whole section of what a model is and how it learns (``model``: every model.* key).
    known = set(fields()) | {"model", "augment", "optimizer"}
    for name, stage in STAGES.items():
        params = [p for p in stage.get("params", []) if isinstance(p, str)]
        assert set(params) <= known, name
