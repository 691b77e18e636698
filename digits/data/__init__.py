"""Getting the data (download: MNIST or the sample) and preparing it (preprocess: arrays for Keras)."""
