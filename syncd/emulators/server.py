"""Run emulator apps (ASGI) with uvicorn on loopback, in a background thread or blocking.

`EmulatorServer` serves one app on a background thread with its own event loop; it is a
context manager for tests, benchmarks and the demo, and knows its `url` once started
(port 0 picks a free port). `serve_forever` runs several apps in the foreground for
`syncd emulate`, until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"


def _uvicorn_config(
    app: ASGIApp, host: str, port: int, certfile: Path | None, keyfile: Path | None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        timeout_graceful_shutdown=1,
    )


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmulatorServer:
    """One ASGI app served on a background thread; `url` is set once `start` returns."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        certfile: Path | None = None,
        keyfile: Path | None = None,
    ) -> None:
        self.app = app
        self.certfile = certfile  # a client trusts the server with this as its CA file
        self.host = host
        self.port = port or free_port(host)
        scheme = "https" if certfile else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        self._server = uvicorn.Server(_uvicorn_config(app, host, self.port, certfile, keyfile))
        self._thread = threading.Thread(target=self._server.run, name=f"emulator:{self.port}")
        self._thread.daemon = True

    def start(self, timeout_s: float = 10.0) -> EmulatorServer:
        """Start serving; return once the port accepts connections or raise RuntimeError."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator on {self.host}:{self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(apps: Sequence[tuple[ASGIApp, int]], host: str = LOOPBACK) -> None:
    """Serve each (app, port) pair in this process until interrupted (Ctrl-C or SIGTERM)."""
    servers = [uvicorn.Server(_uvicorn_config(app, host, port, None, None)) for app, port in apps]

    async def main() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
