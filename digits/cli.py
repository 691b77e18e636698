"""How a stage runs from the command line: one-line errors, a clean Ctrl-C."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from digits.errors import PipelineError

# Keep TensorFlow's C++ start-up banner out of the stage logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def run(main: Callable[[], None]) -> None:
    """Call ``main``; turn expected failures into one line on stderr and an exit status."""
    signal.signal(signal.SIGTERM, _terminate)
    module = main.__module__
    # The stage's short name: "train" for stages.train, also when run as __main__.
    prog = Path(sys.argv[0]).stem if module == "__main__" else module.rsplit(".", 1)[-1]
    try:
        main()
    except PipelineError as exc:
        sys.exit(f"{prog}: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(f"{prog}: interrupted; nothing half-written was left; run it again to finish")
    except OSError as exc:
        where = exc.filename or "an output"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            sys.exit(f"{prog}: error: disk full while writing {where}; free some space and run it again")
        sys.exit(f"{prog}: error: {exc.strerror or exc} ({where}); fix access to it and run it again")
