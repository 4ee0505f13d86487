"""Fault injection shared by the emulators: latency, 5xx answers, timeouts, dropped connections.

`Faults` holds the settings (each a flag of `syncd emulate`) and a seeded random source so a
test or benchmark sees the same sequence of faults on every run. `FaultMiddleware` applies
them to every request before the app sees it. Faults that belong to one device's protocol
(an EF-45 lock held by another client, a lock dropped mid-session) live in that emulator.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are shares of requests, 0.0 to 1.0."""

    latency_ms: float = 0.0
    """The response time: the answer leaves this long after the request arrived."""
    stall_ms: float = 0.0
    """A wait before the device acts at all (a request slow on its way in)."""
    stall_arrived: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when a request starts its `stall_ms` wait: a test that must act while a
    request is in flight (cancel it) waits on this, never on a sleep of its own."""
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_s: float = 30.0
    drop_rate: float = 0.0
    seed: int = 0
    exempt_paths: tuple[str, ...] = ()
    rng: random.Random = field(init=False, repr=False)
    _busy: int = field(init=False, repr=False, default=0)
    _idle: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._idle = threading.Condition()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no request is being handled (a stalled one included); return False
        if requests were still in flight after `timeout_s`. Tests use it to know that a
        request a client gave up on has reached the device (or never will)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout_s)

    def entered(self) -> None:
        """Count one request in flight (`FaultMiddleware`)."""
        with self._idle:
            self._busy += 1

    def left(self) -> None:
        """Count one request done, and wake `wait_idle` when none is left."""
        with self._idle:
            self._busy -= 1
            if self._busy == 0:
                self._idle.notify_all()

    def roll(self, rate: float) -> bool:
        """Return True with probability `rate` (deterministic for a given seed)."""
        return rate > 0 and self.rng.random() < rate


class FaultMiddleware:
    """ASGI middleware that applies `Faults` to each HTTP request."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(
            self.faults.exempt_paths or ("\0",)
        ):
            await self.app(scope, receive, send)
            return
        self.faults.entered()
        try:
            await self._faulty(scope, receive, send)
        finally:
            self.faults.left()

    async def _faulty(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.faults
        if faults.latency_ms:
            send = _answering_after(faults.latency_ms / 1000, send)
        if faults.stall_ms:
            faults.stall_arrived.set()
            await asyncio.sleep(faults.stall_ms / 1000)
        if faults.roll(faults.drop_rate):
            await _drop_midway(send)
            return
        if faults.roll(faults.timeout_rate):
            await asyncio.sleep(faults.timeout_s)
        if faults.roll(faults.error_rate):
            await _send_plain(send, 503, b"fault injection: service unavailable")
            return
        await self.app(scope, receive, send)


def _answering_after(latency_s: float, send: Send) -> Send:
    """Return `send` holding the answer until `latency_s` after the request arrived.

    The latency is the device's response time: the emulator's own work happens inside it,
    as a real terminal's does, instead of being added on top (which made an emulated
    5 ms request take 6 ms and more under load). The event loop's timers wake on a whole
    millisecond, so an answer still comes up to about half a millisecond late.
    """
    loop = asyncio.get_running_loop()
    due = loop.time() + latency_s

    async def send_when_due(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(max(0.0, due - loop.time()))
        await send(message)

    return send_when_due


class DroppedConnection(Exception):
    """Raised inside the server to make uvicorn close a half-sent response."""


async def _drop_midway(send: Send) -> None:
    # An exception before the response starts becomes a clean 500; one after a partial
    # body makes uvicorn close the connection, which the client sees as a drop.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"items": [', "more_body": True})
    raise DroppedConnection("fault injection: connection dropped")


async def _send_plain(send: Send, status: int, body: bytes) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
