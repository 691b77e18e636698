"""Stage ``preprocess``: the tutorial's three steps, from ``data/raw`` to ``data/prepared``.

Reshape to [N, 28, 28, 1], scale pixels 0..255 to 0..1 (float32), one-hot the
labels to [N, 10]. With ``data.limit`` set, the training set is first cut to a
stratified, seeded subset of that many images; the test set is never cut.
"""

from __future__ import annotations

from digits.core import cli
from digits.core.files import atomic_dir
from digits.core.layout import PREPARED, RAW
from digits.core.mnist import read_raw
from digits.core.params import load_params
from digits.data.prepared import prepare, save_prepared, stratified_subset


def main() -> None:
    params = load_params()
    splits, info = read_raw(RAW)
    if params.data.limit is not None:
        splits["train"] = stratified_subset(splits["train"], params.data.limit, params.seed)
    with atomic_dir(PREPARED) as tmp:
        for name, split in splits.items():
            save_prepared(tmp / f"{name}.npz", *prepare(split))
    counts = ", ".join(f"{len(s.labels):,} {name}" for name, s in splits.items())
    print(f"preprocess: {info['source']}: {counts} images prepared in {PREPARED}/")


if __name__ == "__main__":
    cli.run(main)
