"""How a stage or command runs from the command line: one-line errors, a clean Ctrl-C.

Set ``DIGITS_DEBUG=1`` to get the full traceback instead, for a bug report.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from digits.core import quiet
from digits.core.errors import PipelineError

# TensorFlow's INFO and WARNING logs are for its developers; its errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEBUG_VARIABLE = "DIGITS_DEBUG"


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def describe_os_error(exc: OSError) -> str:
    """One line naming what failed (the file, the address) and why."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full while writing {exc.filename or 'an output'}; free some space and run it again"
    if exc.filename:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else exc.filename
        return f"{target}: {exc.strerror or exc}; fix access to it and run it again"
    # No file involved: a network address, a timeout, a library's own message.
    return f"{type(exc).__name__}: {exc}"


def run(main: Callable[[], None], filter_stderr: bool = True) -> None:
    """Call ``main``; turn expected failures into one line on stderr and an exit status.

    ``filter_stderr`` drops TensorFlow's start-up noise (:mod:`digits.core.quiet`) from here on;
    in-process callers such as tests turn it off.
    """
    if filter_stderr:
        quiet.install()  # before main imports TensorFlow
    signal.signal(signal.SIGTERM, _terminate)
    module = main.__module__
    # The stage's short name: "train" for stages.train, also when run as __main__.
    prog = Path(sys.argv[0]).stem if module == "__main__" else module.rsplit(".", 1)[-1]
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        main()  # the traceback, as Python shows it
        return
    hint = f" ({DEBUG_VARIABLE}=1 shows the traceback)"
    try:
        main()
    except PipelineError as exc:
        sys.exit(f"{prog}: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(f"{prog}: interrupted; the previous outputs are untouched; run it again to finish")
    except OSError as exc:
        # With no file named, the cause may be ours: offer the traceback.
        sys.exit(f"{prog}: error: {describe_os_error(exc)}{'' if exc.filename else hint}")
