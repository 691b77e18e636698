"""The project installs as a package: its commands are console scripts of the virtual environment."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, project_env

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_console_script_points_at_a_function(name):
    module, function = SCRIPTS[name].split(":")
    assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.parametrize("name", ["digits-predict", "digits-review", "digits-summary"])
def test_commands_run_from_the_venv_without_activating_it(name, tmp_path):
    script = Path(sys.executable).parent / name
    if not script.is_file():
        pytest.skip(f"{name} is not installed here (make setup installs it)")
    env = {key: value for key, value in project_env().items() if key != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # as from a shell that never activated .venv
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
