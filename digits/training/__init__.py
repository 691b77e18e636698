"""Training (train): the model, one fit, the k-fold protocol, and where the fits run."""
