"""The environment TensorFlow reads once, when a process first imports it.

TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512's newer
instructions. On others, such as an AVX2 AMD EPYC, its own kernels run, and a fit of the
tutorial's CNN trained 1.78x slower there (``bench/efficiency.py``): its MaxPool, forward and
gradient, took two thirds of each step. The kernels are part of the numerics, so the project
does not leave them to the CPU or to the environment: every process that runs TensorFlow for
it starts with oneDNN.
"""

from __future__ import annotations

import os

from digits.core.errors import PipelineError

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def set_environment() -> None:
    """Call before TensorFlow's first import: oneDNN on, and its INFO and WARNING logs off.

    Its logs are for its developers; its errors still show.
    """
    os.environ[ONEDNN_VARIABLE] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def check_onednn() -> None:
    """Fail if TensorFlow runs here without oneDNN: its fits would round unlike the pipeline's.

    That happens only where TensorFlow was imported before :func:`set_environment`, as in a
    Dask worker that had run other code first.
    """
    set_environment()
    from tensorflow.python.util import _pywrap_util_port  # what TensorFlow's own tests ask

    if not _pywrap_util_port.IsMklEnabled():
        raise PipelineError(
            f"TensorFlow in process {os.getpid()} started without oneDNN's kernels, so its fits would "
            f"not match the pipeline's; start that process (a Dask worker) with {ONEDNN_VARIABLE}=1"
        )
