"""Stage ``validate``: check everything that can be checked before any output is touched.

Runs first and on every ``dvc repro`` (``always_changed``), and is cheap. It checks
all of ``params.yaml`` (types, ranges, unknown keys) and what the params need from
the environment, then decides which data the pipeline should use and writes it to
``data/wanted.json``, which ``download`` depends on: once full MNIST can be had,
DVC re-runs ``download`` and what follows by itself; when nothing changed, nothing
re-runs.
"""

from __future__ import annotations

import json

from digits.core import cli
from digits.core.files import atomic_file
from digits.core.layout import RAW, WANTED
from digits.core.params import check_environment, load_params
from digits.data.sources import wanted


def main() -> None:
    params = load_params()
    check_environment(params)
    source, why = wanted(params.data.source, RAW)
    with atomic_file(WANTED) as tmp:
        tmp.write_text(json.dumps({"source": source}) + "\n")
    print(f"validate: params.yaml is valid; data: {source} ({why})")


if __name__ == "__main__":
    cli.run(main)
