"""dvc.yaml tells the truth: each stage depends on exactly the code it runs and the params it reads."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SMALL, run, write_params

from digits.core import layout
from digits.core.params import fields

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
    """The stage's code deps: project modules and folders of them."""
    return {dep for dep in stage["deps"] if dep.split("/")[0] in PACKAGES}


def expand(dep: str) -> set[str]:
    """The modules a code dep stands for: the file, or every module under the folder."""
    path = ROOT / dep
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return {f.relative_to(ROOT).as_posix() for f in files}


def stage_closure(name: str) -> set[str]:
    module = re.fullmatch(r"python -m ([\w.]+)", STAGES[name]["cmd"]).group(1)
    return import_closure(module)


def project_modules() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_depends_on_exactly_the_code_it_runs(name):
    closure = stage_closure(name)
    assert f"stages/{name}.py" in closure
    for dep in code_deps(STAGES[name]):
        assert (ROOT / dep).exists(), f"{name}: depends on {dep}, which does not exist"
        assert expand(dep) <= closure, (
            f"{name}: depends on {dep} but does not run {sorted(expand(dep) - closure)}"
        )
    declared = set().union(*map(expand, code_deps(STAGES[name])))
    assert not closure - declared, f"{name}: runs but does not depend on {sorted(closure - declared)}"


def test_import_closure_follows_imports_inside_functions(tmp_path):
    # digits.training.fit imports digits.training.model inside fit: the closure must still see it.
    assert "digits/training/model.py" in import_closure("digits.training.fit")
    assert "digits/training/model.py" not in import_closure("digits.core.params")


def test_a_module_edit_reruns_only_the_stages_that_run_it():
    for module in project_modules():
        depending = {
            name for name, stage in STAGES.items() if any(module in expand(d) for d in code_deps(stage))
        }
        running = {name for name in STAGES if module in stage_closure(name)}
        assert depending == running, module
    runs = {name: set().union(*map(expand, code_deps(stage))) for name, stage in STAGES.items()}
    assert [name for name, deps in runs.items() if "digits/reporting/evaluation.py" in deps] == ["evaluate"]
    assert [name for name, deps in runs.items() if "digits/data/sources.py" in deps] == [
        "validate",
        "download",
    ]
    assert "digits/use/serve.py" not in set().union(*runs.values())


def test_code_deps_are_folders_where_a_stage_runs_the_whole_folder():
    # dvc.yaml stays short: a folder the stage runs whole is one dep, not a list of its modules.
    for name, stage in STAGES.items():
        deps = code_deps(stage)
        for folder in {Path(d).parent.as_posix() for d in deps if d.endswith(".py")} - {"stages", "digits"}:
            modules = expand(folder)
            assert not modules <= stage_closure(name), f"{name}: list {folder} as one dep"
    assert len(code_deps(STAGES["train"])) <= 7


def test_every_artifact_path_is_declared_in_dvc_yaml_and_the_other_way_round():
    declared = {
        next(iter(out)) if isinstance(out, dict) else out
        for stage in STAGES.values()
        for section in ("outs", "metrics", "plots")
        for out in stage.get(section, [])
    }
    paths = {str(value) for value in vars(layout).values() if isinstance(value, Path)}
    assert paths == declared


def test_no_output_switches_off_the_run_cache():
    # DVC keeps no run-cache for a stage with a persistent output, nor with an uncached output
    # that is neither a metric nor a plot (dvc/stage: run_cache=not no_cache_outs).
    for name, stage in STAGES.items():
        for out in stage.get("outs", []):
            path, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            assert not options.get("persist"), f"{name}: {path} is persist: true"
            assert options.get("cache", True), f"{name}: {path} is cache: false"


# Run in a project: each named stage's main, as ``python -m stages.<name>`` runs it, with every
# params key it reads after load_params recorded; prints {stage: [keys]}.
RECORD_READS = """
import json, runpy, sys
from pydantic import BaseModel
import digits.core.params as module

prefixes = {module.Params: ""} | {
    info.annotation: f"{name}."
    for name, info in module.Params.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
}
reads, recording = {}, []
plain_getattribute, plain_load = module._Section.__getattribute__, module.load_params

def getattribute(self, name):
    value = plain_getattribute(self, name)
    if recording and name in type(self).model_fields and not isinstance(value, BaseModel):
        reads[recording[-1]].add(prefixes[type(self)] + name)
    return value

def load_params(*args, **kwargs):  # what load_params reads to validate is not the stage's reading
    stage = recording.pop()
    params = plain_load(*args, **kwargs)
    recording.append(stage)
    return params

module._Section.__getattribute__, module.load_params = getattribute, load_params
for stage in sys.argv[1:]:
    reads[stage] = set()
    recording[:] = [stage]
    runpy.run_module(f"stages.{stage}", run_name="__main__")
print(json.dumps({stage: sorted(keys) for stage, keys in reads.items()}))
"""
# Keys that choose where the fits run, never what they compute (dvc.yaml: only validate declares them).
NOT_OUTPUTS = {"train": {"cv.n_jobs", "cv.backend", "cv.scheduler"}}


def declared_params(stage: dict) -> set[str]:
    """The keys a stage's ``params:`` covers: a key, a whole section, or all of params.yaml."""
    covered = set()
    for entry in stage.get("params", []):
        if isinstance(entry, dict):  # ``params.yaml:``, every key
            return set(fields())
        covered |= {key for key in fields() if key == entry or key.startswith(f"{entry}.")}
    return covered


def test_stages_read_only_declared_params(project):
    # A key, or a whole section of what a model is and how it learns (``model``: every model.* key).
    known = set(fields()) | {"model", "augment", "optimizer"}
    for name, stage in STAGES.items():
        assert {p for p in stage.get("params", []) if isinstance(p, str)} <= known, name
    # What each stage reads, run by run: one process, the fits in it (cv.n_jobs 1).
    write_params(project / "params.yaml", **{**SMALL, "cv__n_jobs": 1})
    result = run([sys.executable, "-c", RECORD_READS, *STAGES], project)
    reads = json.loads(result.stdout.splitlines()[-1])
    assert reads["train"] and reads["plot"] == ["plot.misclassified"]  # the recording sees reads
    for name, stage in STAGES.items():
        undeclared = set(reads[name]) - declared_params(stage) - NOT_OUTPUTS.get(name, set())
        assert not undeclared, f"{name}: reads {sorted(undeclared)} but dvc.yaml does not declare them"
