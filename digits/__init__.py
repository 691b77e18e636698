"""digits-dvc: what the pipeline's stages share, and the commands (predict, review, summary)."""

import importlib.util
import sys

# Run with a Python that lacks the project's dependencies (outside .venv), every command
# would end in a ModuleNotFoundError traceback: say what to do instead, in one line. Only
# what every set-up installs counts: the review job's (requirements-review.lock) has no
# numpy or keras.
if any(importlib.util.find_spec(name) is None for name in ("dvc", "vl_convert")):
    sys.exit(
        f"digits: the project's dependencies are not installed for {sys.executable}; "
        "run `make run` once, then use .venv/bin/digits-predict (or `source .venv/bin/activate`)"
    )
