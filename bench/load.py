"""Load test of the draw-a-digit server on this machine: N clients at once, for a fixed time.

    python -m bench.load [--model models/model.keras] [--clients 20] [--seconds 30]

Starts ``python -m digits.use.serve`` on 127.0.0.1 (a free port), then runs ``--clients``
clients side by side for ``--seconds``, each behaving as the page does while someone draws:
it sends the drawing (a 140x140 PNG, as the page sends it), waits for the answer, and sends
the next one ``--interval`` ms after the previous one was sent (the page's 100 ms), or at
once if the answer took longer; ``--interval 0`` sends back to back. Stops by itself, stops
the server, and prints the requests, the errors (any answer but 200 with a prediction), the
throughput and the latency percentiles. Exits 1 on any error. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from digits.core.layout import FINAL_MODEL

HOST = "127.0.0.1"


def drawings(count: int = 40, seed: int = 0) -> list[bytes]:
    """PNGs as the page sends them: black strokes drawn 24 px wide on its white 280x280
    canvas, sent at half size."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(count):
        image = Image.new("L", (280, 280), 255)
        pen = ImageDraw.Draw(image)
        points = [tuple(int(v) for v in rng.integers(50, 230, 2)) for _ in range(rng.integers(2, 6))]
        pen.line(points, fill=0, width=24, joint="curve")
        out = BytesIO()
        image.resize((140, 140), Image.Resampling.BILINEAR).convert("RGBA").save(out, "PNG")
        shapes.append(out.getvalue())
    return shapes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"load: the server stopped (exit {server.returncode})")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if json.load(response)["ready"]:
                    return
                sys.exit("load: the server has no model; pass --model")
        except OSError:
            time.sleep(0.2)
    sys.exit(f"load: the server did not start within {timeout:.0f} s")


async def client(
    port: int, bodies: list[bytes], interval: float, until: float, latencies: list[float], errors: list[str]
) -> None:
    """One client on one keep-alive connection: a drawing, its answer, the next drawing."""
    reader, writer = await asyncio.open_connection(HOST, port)
    i = 0
    try:
        while (start := time.perf_counter()) < until:
            body = bodies[i % len(bodies)]
            i += 1
            head = f"POST /api/predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/png\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200 or "predictions" not in json.loads(answer):
                errors.append(f"{status}: {answer[:200]!r}")
            await asyncio.sleep(start + interval - time.perf_counter())
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def hammer(
    port: int, clients: int, interval: float, seconds: float
) -> tuple[list[float], list[str], float]:
    bodies = drawings()
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(client(port, bodies[c:] + bodies[:c], interval, until, latencies, errors) for c in range(clients))
    )
    return latencies, errors, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=FINAL_MODEL, help=f"default: {FINAL_MODEL}")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--interval", type=float, default=100, help="ms between a client's requests (default 100)"
    )
    args = parser.parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"load: {args.model}: missing; train the model first (make run) or pass --model")

    port = free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable,
        "-m",
        "digits.use.serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--model",
        str(args.model),
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://{HOST}:{port}", server)
        latencies, errors, elapsed = asyncio.run(
            hammer(port, args.clients, args.interval / 1000, args.seconds)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.percentile(np.array(latencies) * 1000, [50, 95, 99]) if latencies else [float("nan")] * 3
    print(
        f"{args.clients} clients, one request per {args.interval:.0f} ms at most, {elapsed:.1f} s: "
        f"{len(latencies)} requests, {len(errors)} errors, "
        f"{len(latencies) / elapsed:.0f} requests/s; latency p50 {ms[0]:.1f} ms, p95 {ms[1]:.1f} ms, "
        f"p99 {ms[2]:.1f} ms"
    )
    for message in errors[:5]:
        print(f"load: error: {message}", file=sys.stderr)
    if errors or not latencies:
        sys.exit(1)


if __name__ == "__main__":
    main()
