"""Where the pipeline's artifacts live: the paths dvc.yaml declares, in one place."""

from pathlib import Path

WANTED = Path("data/wanted.json")  # validate: which data download should provide
RAW = Path("data/raw")  # download: canonical IDX files and source.json
PREPARED = Path("data/prepared")  # preprocess: train.npz, test.npz

FOLD_MODELS = Path("models/folds")  # train: fold_<k>.keras
FINAL_MODEL = Path("models/model.keras")  # train: the model fitted on all training images
CV_METRICS = Path("metrics/cv.json")
HISTORY = Path("plots/cv/history.csv")
SCORES = Path("plots/cv/scores.csv")

TEST_METRICS = Path("metrics/test.json")  # evaluate
PREDICTIONS = Path("plots/test/predictions.csv")

IMAGES = Path("plots/images")  # plot
MEAN_HISTORY = Path("plots/cv/mean_history.csv")
