"""digits-dvc: what the pipeline's stages share, and the commands (predict, review, summary)."""

import importlib.util
import os
import sys
from pathlib import Path

# Run with a Python that lacks the project's dependencies, such as the `python` that a
# `.venv/bin/dvc repro` without activation finds on PATH for the stages: use the project's
# own .venv if it has one, else say what to do in one line instead of a traceback. Only
# what every set-up installs counts: the review job's (requirements-review.lock) has no
# numpy or keras.
if any(importlib.util.find_spec(name) is None for name in ("dvc", "vl_convert")):
    _venv = Path(__file__).resolve().parents[1] / ".venv"
    if (_venv / "bin" / "python").is_file() and Path(sys.prefix).resolve() != _venv.resolve():
        os.execv(_venv / "bin" / "python", [str(_venv / "bin" / "python"), *sys.orig_argv[1:]])
    sys.exit(
        f"digits: the project's dependencies are not installed for {sys.executable}; "
        "run `make run` once to create .venv, then `source .venv/bin/activate` (or use .venv/bin/...)"
    )
