"""The draw-a-digit app served by uvicorn in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time


class InProcessServer:
    """``with InProcessServer(create_app(model)) as server:`` the app answers at ``server.url``."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        # log_config=None: uvicorn's own logging set-up (logging.config.dictConfig) closes the
        # handlers already there, and absl's handler then closes its stream, pytest's captured
        # stderr, when a test's capfd has swapped another one in. Uvicorn's errors still reach
        # stderr, through logging's last-resort handler.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
