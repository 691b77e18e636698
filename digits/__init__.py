"""digits-dvc: the library behind the pipeline's stages (data I/O, params, model, training)."""
