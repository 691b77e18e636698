"""Keep TensorFlow's C++ start-up noise out of the terminal, and nothing else.

TensorFlow's C++ runtime writes a few lines through absl before its own logging is
set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot reach them: "All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on ..." (oneDNN stays on:
it is part of the numerics) and "NodeDef mentions attribute
use_unbounded_threadpool ..." (a harmless graph attribute). :func:`install` sends
this process's file descriptor 2 through a pipe whose reader drops exactly those
lines and passes everything else through unchanged, real errors and warnings
included. Worker processes started afterwards inherit the filtered descriptor.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import sys
import threading

NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWE]\d{4} [\d:. ]+\d+ (port\.cc:\d+\] oneDNN custom operations are on"
    rb"|node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool )"
)
# The start of a line that may still turn out to be noise: held back until it is complete.
MAYBE_NOISE = re.compile(rb"(W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?|[IWE]\d{0,4}( [\d:. ]*.*)?)\Z", re.S)

_installed = False


def is_noise(line: bytes) -> bool:
    return NOISE.match(line) is not None


def _filter(pending: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """What of ``pending + chunk`` to write now, and the partial line to hold back."""
    lines = (pending + chunk).split(b"\n")
    pending = lines.pop()
    out = b"".join(line + b"\n" for line in lines if not is_noise(line))
    # A partial line (a progress bar redrawn with \r) goes out at once unless it may be noise.
    if pending and not MAYBE_NOISE.match(pending):
        out, pending = out + pending, b""
    return out, pending


def _pump(source: int, sink: int, closing: threading.Event, state: dict) -> None:
    while not closing.is_set():
        if not select.select([source], [], [], 0.1)[0]:
            continue
        chunk = os.read(source, 1 << 16)
        if not chunk:
            break
        out, state["pending"] = _filter(state["pending"], chunk)
        if out:
            os.write(sink, out)


def install() -> None:
    """Filter this process's stderr (file descriptor 2) from now on; idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    terminal = os.dup(2)
    source, sink = os.pipe()
    os.dup2(sink, 2)
    os.close(sink)
    closing = threading.Event()
    state = {"pending": b""}
    pump = threading.Thread(
        target=_pump, args=(source, terminal, closing, state), name="stderr-filter", daemon=True
    )
    pump.start()

    def restore() -> None:
        # Write to the terminal directly again, stop the reader, then pass on what is still in
        # the pipe (the last lines: an error message) from here, whatever the reader managed.
        sys.stderr.flush()
        os.dup2(terminal, 2)
        closing.set()
        pump.join(timeout=1)
        os.set_blocking(source, False)
        rest = b""
        try:
            while chunk := os.read(source, 1 << 16):
                rest += chunk
        except BlockingIOError:
            pass  # a worker still holds the pipe open: nothing more now
        out, pending = _filter(state["pending"], rest)
        if not is_noise(pending):
            out += pending
        if out:
            os.write(terminal, out)

    atexit.register(restore)
