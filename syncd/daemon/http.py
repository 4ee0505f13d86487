"""The daemon's HTTP listener (`daemon.metrics_listen`, localhost by default).

    GET  /metrics           Prometheus text format
    GET  /healthz           200 "ok" / "standby" when the scheduler runs and the ledger
                            answers `SELECT 1`; 503 with the reason otherwise
    POST /jobs/{name}/run   run a job now (`syncd trigger NAME`): 202 queued, 404 unknown
                            or unavailable job, 409 on a standby daemon, 503 stopping;
                            403 unless the client is on loopback, so exposing /metrics
                            to a Prometheus on the network never exposes the trigger

Served by uvicorn on a thread of its own; `Listener.stop` ends it.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Hooks:
    """What the HTTP layer asks of the daemon."""

    registry: CollectorRegistry
    health: Callable[[], tuple[bool, str]]
    trigger: Callable[[str], tuple[int, str]]


def parse_listen(value: str) -> tuple[str, int]:
    """Return (host, port) of "host:port" or "[v6]:port"; raise ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"not host:port: {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _is_loopback(request: Request) -> bool:
    client = request.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False


def create_app(hooks: Hooks) -> Starlette:
    """Return the ASGI app serving `hooks`."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(hooks.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        ok, reason = hooks.health()
        return PlainTextResponse(reason + "\n", status_code=200 if ok else 503)

    async def run_job(request: Request) -> Response:
        if not _is_loopback(request):
            return PlainTextResponse("trigger accepted from loopback only\n", status_code=403)
        status, text = hooks.trigger(str(request.path_params["name"]))
        return PlainTextResponse(text + "\n", status_code=status)

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/jobs/{name}/run", run_job, methods=["POST"]),
        ]
    )


class Listener:
    """The app served on `host:port` by uvicorn in a background thread."""

    def __init__(self, hooks: Hooks, listen: str) -> None:
        self.host, self.port = parse_listen(listen)
        config = uvicorn.Config(
            create_app(hooks),
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> Listener:
        """Start serving; return once listening, or raise OSError (e.g. port taken)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"cannot listen on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait (briefly) for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
