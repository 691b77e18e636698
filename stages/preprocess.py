"""Stage ``preprocess``: the tutorial's three steps, from ``data/raw`` to ``data/prepared``.

Reshape to [N, 28, 28, 1], scale pixels 0..255 to 0..1 (float32), one-hot the
labels to [N, 10]. With ``data.limit`` set, the training set is first cut to a
stratified, seeded subset of that many images; the test set is never cut.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from digits import cli
from digits.errors import DataError
from digits.files import atomic_dir
from digits.layout import PREPARED, RAW
from digits.mnist import NUM_CLASSES, Split, read_raw
from digits.params import load_params
from digits.prepared import save_prepared


def prepare(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and labels [N] -> x float32 [N, 28, 28, 1] in 0..1, y one-hot [N, 10]."""
    x = split.images.reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    y = np.eye(NUM_CLASSES, dtype=np.float32)[split.labels]
    return x, y


def stratified_subset(split: Split, limit: int, seed: int) -> Split:
    """``limit`` images drawn without replacement, keeping the class proportions."""
    n = len(split.labels)
    if limit >= n:
        return split
    if n - limit < NUM_CLASSES:  # the part left out must hold every class too
        raise DataError(
            f"params.yaml: data.limit is {limit}; with {n} training images it must be at most "
            f"{n - NUM_CLASSES} or null"
        )
    keep, _ = train_test_split(
        np.arange(len(split.labels)), train_size=limit, stratify=split.labels, random_state=seed
    )
    keep.sort()  # keep the original order
    return Split(split.images[keep], split.labels[keep])


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
