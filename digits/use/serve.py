"""A local web page to draw a digit (or upload a photo of one) and watch the model read it.

    make serve                      # then open 127.0.0.1:8000 in a browser
    python -m digits.use.serve [--host 127.0.0.1] [--port 8000] [--model models/model.keras]

``GET /`` is the page (``digits/use/static/index.html``, self-contained: it works offline).
``POST /api/predict`` takes an image file as the request body (the drawing as PNG, or a
photo) and answers with the top 3 digits, the label (``7`` or ``unsure: 4 or 9``) and the
28x28 image the model saw; the image goes through the same preprocessing as
``python -m digits.use.predict`` (``digits.use.photo``). ``GET /api/status`` says whether a model is
there. Every error is a JSON object ``{"error": "..."}`` with a 4xx status (503 while there
is no usable model), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import errno
import hashlib
import os
import re
import socket
import threading
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from anyio import CapacityLimiter, to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from digits.core import cli
from digits.core.errors import DataError, PipelineError
from digits.core.layout import FINAL_MODEL
from digits.use.classifier import Answer, Classifier
from digits.use.photo import open_image, to_mnist
from digits.use.provenance import provenance

MAX_UPLOAD = 16 * 1024 * 1024  # bytes: a phone photo is 2-10 MB
# Uploads decoded at a time: a 40-megapixel image takes about 200 MB while it is decoded.
DECODERS = 2
# Uploads admitted at a time, decoding or waiting to (their bodies are held: at most
# QUEUE x MAX_UPLOAD bytes); one more gets a 503. Above the load test's 20 clients at once.
QUEUE = 32
TOP = 3
UPLOAD = "upload"  # what error messages call the uploaded image
LOCAL = ("127.0.0.1", "localhost", "::1")  # host names always served
CONNECTIONS = 64  # connections and requests at a time; uvicorn answers 503 past them
IDLE = 5  # seconds a kept-alive connection may wait for its next request
HEAD_TIMEOUT = 5  # seconds a new connection has to send its request line and headers


class Unavailable(Exception):
    """No usable model: the page shows the message (503)."""


class ModelSlot:
    """The model file, loaded again whenever it changes, so no restart is needed after a
    ``dvc repro``, ``dvc exp apply`` or ``dvc checkout``.

    A change is a new inode, size or modification time. DVC and the stages replace the file
    whole (a rename), so a load sees the old model or the new one. A file still being written
    by something else fails to load and reads as not ready until it changes again, and then
    it is loaded again.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.shown = shown(self.path)
        self._loading = threading.Lock()
        # (file signature, the model or why there is none, provenance), as of the last load
        self._loaded: tuple[tuple[int, int, int] | None, Classifier | str, str | None] | None = None
        # One prediction at a time: each takes about a millisecond, and Keras models are
        # not documented as safe to call from several threads at once.
        self.predicting = threading.Lock()
        if self.path.is_file():  # a damaged or unsuitable model file stops the start, in one line
            self._loaded = (self._signature(), Classifier.load(self.path), provenance(self.path))

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def get(self) -> tuple[Classifier, str | None]:
        """The model and its provenance (:mod:`digits.use.provenance`); Unavailable if there is none."""
        with self._loading:
            signature = self._signature()
            if signature is None:
                raise Unavailable(f"no trained model yet ({self.shown}): run make run, then reload this page")
            if self._loaded is None or self._loaded[0] != signature:
                try:
                    loaded: Classifier | str = Classifier.load(self.path)
                except DataError as exc:
                    loaded = str(exc).replace(str(self.path), self.shown)
                self._loaded = (signature, loaded, provenance(self.path))
            _, classifier, trained = self._loaded
        if isinstance(classifier, str):
            raise Unavailable(classifier)
        return classifier, trained


def shown(path: Path) -> str:
    """How the page names ``path``: relative to the working directory, else its name alone (an
    absolute path tells a page of another site, reading it by DNS rebinding, about this machine)."""
    resolved = Path(os.path.abspath(path))
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else path.name


class SameOrigin:
    """Only requests for the host names the server was started for, and none sent by another site.

    Any web page the user visits can make the browser send a "simple" cross-site POST here, and
    by DNS rebinding read the answers under its own name: the ``Origin`` and ``Host`` headers
    give both away. Refused in JSON, as every other error.
    """

    def __init__(self, app, hosts: set[str], extra: list[tuple[bytes, bytes]]) -> None:
        self.app, self.hosts, self.extra = app, hosts, extra

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            send = self.with_headers(send)
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            if urlsplit(f"//{host}").hostname not in self.hosts:
                names = ", ".join(sorted(self.hosts))
                message = f"unknown host {host!r}: this server answers to {names} only"
                return await error(400, message)(scope, receive, send)
            origin = headers.get("origin")
            if (
                scope["method"] not in ("GET", "HEAD")
                and origin is not None
                and origin != f"{scope['scheme']}://{host}"
            ):
                message = f"cross-site request from {origin} refused: use the page this server serves"
                return await error(403, message)(scope, receive, send)
        await self.app(scope, receive, send)

    def with_headers(self, send):
        """``send``, adding ``self.extra`` to the response headers."""

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.extra]}
            await send(message)

        return sending


def names(host: str) -> set[str]:
    """The host names a server listening on ``host`` answers to: ``LOCAL``, ``host``, and when that
    is every interface (0.0.0.0, ::) this machine's name and addresses."""
    found = {*LOCAL, host.strip("[]").lower()}
    if host in ("0.0.0.0", "::", "[::]"):
        import psutil

        found.add(socket.gethostname().lower())
        addresses = [a for nic in psutil.net_if_addrs().values() for a in nic]
        found.update(
            a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)
        )
    return found


def policy(page: str) -> str:
    """The page's Content-Security-Policy: its own inline script and style (by hash), requests to
    this server only, and no framing by another page (clickjacking)."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in found
        )

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


class Gate:
    """At most ``decoders`` uploads decoded at a time, and ``queue`` admitted in all.

    Used from the event loop only, so a plain counter is safe.
    """

    def __init__(self, decoders: int = DECODERS, queue: int = QUEUE) -> None:
        self.decoding = CapacityLimiter(decoders)
        self.queue = queue
        self.admitted = 0

    def admit(self) -> None:
        if self.admitted >= self.queue:
            raise HTTPException(503, f"busy: {self.queue} images are being read; try again in a moment")
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def reply(digit: np.ndarray, answer: Answer) -> dict:
    """The answer as the page wants it; ``mnist`` is the 28x28 image, base64 of 784 bytes."""
    return {
        "label": answer.label,
        "unsure": answer.unsure,
        "predictions": [{"digit": d, "probability": round(p, 6)} for d, p in answer.ranking[:TOP]],
        "mnist": base64.b64encode(np.uint8(np.round(digit * 255)).tobytes()).decode(),
    }


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past ``MAX_UPLOAD`` without reading the rest."""
    too_large = HTTPException(413, f"{UPLOAD}: larger than {MAX_UPLOAD // 2**20} MB; send a smaller image")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model_path: Path = FINAL_MODEL, gate: Gate | None = None, host: str = LOCAL[0]) -> Starlette:
    """The web app, serving the model at ``model_path`` under the names ``LOCAL`` and ``host``,
    its uploads bounded by ``gate``."""
    slot = ModelSlot(model_path)
    gate = gate or Gate()
    page = (resources.files("digits.use") / "static" / "index.html").read_text(encoding="utf-8")
    extra = [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", policy(page).encode()),
        (b"referrer-policy", b"no-referrer"),
    ]

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def status(request: Request) -> JSONResponse:
        try:
            _, trained = await run_in_threadpool(slot.get)
        except Unavailable as exc:
            return JSONResponse({"ready": False, "model": slot.shown, "message": str(exc), "trained": None})
        return JSONResponse({"ready": True, "model": slot.shown, "message": "", "trained": trained})

    def read_and_classify(body: bytes) -> JSONResponse:
        """Read the upload and classify it: CPU work, run in a worker thread."""
        try:
            classifier, _ = slot.get()
        except Unavailable as exc:
            return error(503, str(exc))
        try:
            digit = to_mnist(open_image(body, UPLOAD), UPLOAD)
        except DataError as exc:
            return error(400, str(exc))
        try:
            with slot.predicting:
                answer = classifier.classify(digit[np.newaxis])[0]
        except DataError as exc:  # the model gave no probabilities for this image
            return error(503, str(exc))
        return JSONResponse(reply(digit, answer))

    async def predict(request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").startswith("multipart/"):
            fix = "send the image itself as the request body (curl --data-binary @seven.png), not a form"
            return error(400, f"{UPLOAD}: {fix}")
        gate.admit()  # before the body is read: a refused upload costs no memory
        try:
            try:
                body = await read_body(request)
            except ClientDisconnect:  # the client went away mid-upload: nobody to answer
                return error(400, f"{UPLOAD}: the connection closed before the image was sent")
            # Waiting here holds no thread; the decoding itself runs in a worker thread.
            return await to_thread.run_sync(read_and_classify, body, limiter=gate.decoding)
        finally:
            gate.leave()

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), exc.headers)  # a 405's Allow

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours: the traceback goes to the server's log, the page gets JSON it can show.
        return error(503, f"internal error ({type(exc).__name__}); see the server's log, then try again")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", status),
            Route("/api/predict", predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: unexpected},
        middleware=[Middleware(SameOrigin, hosts=names(host), extra=extra)],
    )
    # A redirect from /api/status/ to /api/status would be built from the Host header.
    app.router.redirect_slashes = False
    return app


def head_timeout() -> type:
    """uvicorn's HTTP protocol, closing a connection that has not sent its request head within
    ``HEAD_TIMEOUT`` seconds (uvicorn times out only idle kept-alive connections), so slow or
    silent clients cannot hold every connection."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.head_deadline = self.loop.call_later(HEAD_TIMEOUT, transport.close)

        def on_headers_complete(self) -> None:
            self.head_deadline.cancel()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self.head_deadline.cancel()
            super().connection_lost(exc)

    return Protocol


def check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port that is taken (uvicorn would log it at length)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PipelineError(
                    f"port {port} is in use; choose another: make serve PORT={port + 1}"
                ) from None
            raise PipelineError(f"cannot listen on {host}:{port} ({exc.strerror})") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m digits.use.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    parser.add_argument("--model", type=Path, default=FINAL_MODEL, help=f"default: {FINAL_MODEL}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    check_port(args.host, args.port)
    app = create_app(args.model, host=args.host)
    # Plain HTTP on purpose: a page on this machine (the sources spell out no such URL otherwise).
    url = urlunsplit(("http", f"{args.host}:{args.port}", "/", "", ""))
    print(f"serve: {url} (model {args.model}); Ctrl-C to stop", flush=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http=head_timeout(),
        limit_concurrency=CONNECTIONS,
        timeout_keep_alive=IDLE,
        log_level="warning",
        access_log=False,
    )
    try:
        asyncio.run(uvicorn.Server(config).serve())
    except KeyboardInterrupt:  # uvicorn has shut down cleanly, then passed on Ctrl-C or SIGTERM
        pass
    print("serve: stopped", flush=True)


if __name__ == "__main__":
    cli.run(main)
