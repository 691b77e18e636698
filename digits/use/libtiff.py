"""libtiff's error messages, kept for the decode that caused them instead of written to stderr.

Pillow decodes compressed TIFFs with libtiff, whose default error handler prints straight to
file descriptor 2: a damaged upload put lines such as "ZIPDecode: Decoding error at scanline 0,
incorrect data check." into the server's log, outside its logging, and in ``predict`` above its
one-line error. (Pillow switches libtiff's warnings off, not its errors.) :func:`listen`
replaces that handler in the libtiff Pillow has loaded; :func:`last_error` is what libtiff last
said in this thread, for the error message of the image being read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from functools import cache
from pathlib import Path

import PIL.Image  # noqa: F401  (loads Pillow's libtiff, which is the one to find)

# libtiff's TIFFErrorHandler: void (*)(const char *module, const char *fmt, va_list ap). A va_list
# argument reaches C functions as a pointer, on x86-64 and on ARM64 alike.
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_heard = threading.local()
_handlers: list = []  # kept alive for as long as libtiff may call them


def loaded_library() -> str | None:
    """The path of the libtiff in this process (Pillow's wheel bundles its own), else the system's."""
    maps = Path("/proc/self/maps")
    if maps.exists():
        for line in maps.read_text().splitlines():
            path = line.split(maxsplit=5)[-1]
            if Path(path).name.startswith("libtiff"):
                return path
    return ctypes.util.find_library("tiff")


@cache
def listen() -> bool:
    """From now on, libtiff's errors go to :func:`last_error`, not to stderr; whether that took."""
    path = loaded_library()
    if path is None:
        return False
    vsnprintf = ctypes.CDLL(None).vsnprintf
    vsnprintf.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)

    def heard(module: bytes | None, fmt: bytes, args: int | None) -> None:
        text = ctypes.create_string_buffer(512)
        vsnprintf(text, len(text), fmt, args)
        _heard.error = text.value.decode(errors="replace").rstrip(".")

    set_handler = ctypes.CDLL(path).TIFFSetErrorHandler
    set_handler.argtypes, set_handler.restype = (_HANDLER,), ctypes.c_void_p
    _handlers.append(_HANDLER(heard))
    set_handler(_handlers[-1])
    return True


def last_error() -> str | None:
    """What libtiff last said in this thread since the last call, if anything."""
    error, _heard.error = getattr(_heard, "error", None), None
    return error
