"""What every stage runs.

Params, artifact paths, all-or-nothing writes, errors and the command line, and the
MNIST file format of ``data/raw``.
"""
