"""How a stage or command runs from the command line: one-line errors, a clean Ctrl-C.

Set ``DIGITS_DEBUG=1`` to get the full traceback instead, for a bug report.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from digits.core import quiet
from digits.core.errors import PipelineError
from digits.core.tensorflow_env import set_environment

set_environment()  # before any stage or command imports TensorFlow

DEBUG_VARIABLE = "DIGITS_DEBUG"
SHELLS = {"sh", "dash", "bash", "zsh", "ksh", "fish"}  # what DVC may run a stage's command with
WATCH_SECONDS = 0.5


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


def _stage_name() -> str | None:
    """The stage being run (``train`` for ``python -m stages.train``), or None for a command."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    package, _, name = (spec.name if spec else "").rpartition(".")
    return name if package == "stages" else None


def _end_with_dvc() -> None:
    """Get SIGTERM within a second of the ``dvc`` that runs this stage dying (``kill -9`` of it).

    Otherwise an orphaned stage and its workers train on, and later replace outputs behind
    DVC's back. DVC runs the command through ``$SHELL -c``: bash execs it, so ``dvc`` is the
    parent, but dash (``/bin/sh``, DVC's shell when ``SHELL`` is unset) forks it and waits, so
    ``dvc`` is the shell's parent. Either way, the one to watch is the process whose parent
    ``dvc`` is: its parent changes when ``dvc`` dies.
    """
    import psutil

    me = psutil.Process()
    parent = me.parent()
    child = parent if parent is not None and parent.name() in SHELLS else me
    dvc = child.ppid()

    def watch() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            try:
                if child.ppid() == dvc:
                    continue
            except psutil.Error:  # the shell itself is gone
                pass
            os.kill(os.getpid(), signal.SIGTERM)
            return

    threading.Thread(target=watch, name="end-with-dvc", daemon=True).start()


def _outputs_back(stage: str | None) -> str:
    """After a failed stage, its outputs as dvc.lock records them; what to say about it."""
    if stage is None:
        return ""
    from digits.core.restore import restore_stage

    try:
        restored = restore_stage(stage)
    except PipelineError as exc:
        return f"; DVC removed its outputs before the run, and {exc}"
    return "; its outputs are back as dvc.lock records them" if restored else ""


def run(main: Callable[[], None], filter_stderr: bool = True) -> None:
    """Call ``main``; turn expected failures into one line on stderr and an exit status.

    ``filter_stderr`` drops TensorFlow's start-up noise (:mod:`digits.core.quiet`) from here on;
    in-process callers such as tests turn it off. A stage that fails puts its outputs back
    as dvc.lock records them (:mod:`digits.core.restore`): DVC deletes them before it runs it.
    """
    if filter_stderr:
        quiet.install()  # before main imports TensorFlow
    signal.signal(signal.SIGINT, signal.default_int_handler)  # stages/__init__.py set its own
    signal.signal(signal.SIGTERM, _terminate)
    stage = _stage_name()
    module = main.__module__
    # The short name: "train" for stages.train, also when run as __main__.
    prog = stage or (Path(sys.argv[0]).stem if module == "__main__" else module.rsplit(".", 1)[-1])
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        main()  # the traceback, as Python shows it
        return
    hint = f" ({DEBUG_VARIABLE}=1 shows the traceback)"
    try:
        if stage:
            _end_with_dvc()
        main()
    except PipelineError as exc:
        sys.exit(f"{prog}: error: {exc}{_outputs_back(stage)}")
    except KeyboardInterrupt:
        again = "; run it again to finish" if stage else ""
        sys.exit(f"{prog}: interrupted{_outputs_back(stage)}{again}")
    except OSError as exc:
        # With no file named, the cause may be ours: offer the traceback.
        why = f"{describe_os_error(exc)}{'' if exc.filename else hint}"
        sys.exit(f"{prog}: error: {why}{_outputs_back(stage)}")
    except BaseException as exc:  # a bug (its traceback follows), or a stage's own exit status
        if stage and not (isinstance(exc, SystemExit) and exc.code in (0, None)):
            print(f"{prog}: failed{_outputs_back(stage)}", file=sys.stderr)
        raise
