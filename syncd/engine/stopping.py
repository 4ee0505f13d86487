"""Stops on time: a stop request that reaches the event loops, and bounded cancellation.

`Stop` is a `threading.Event` (set from a signal handler, a timer or another thread)
that also calls back whoever listens, so an asyncio loop on another thread learns of it
at once (`bridged`) instead of at its next check: the request in flight is cancelled,
not awaited to its timeout. `Stop.reason` says why ("SIGTERM", "job deadline of 3600 s").

A thread may name its current stop (`scope`): the engine's entry points that run an
event loop (`run`) and `Syncer.apply` use it when they are not given one, so the
daemon's job runner and the CLI stop every job and command the same way.

`cancel_within` bounds a cancellation: the task is cancelled, given `grace_s` to clean
up (an EF-45 session releases its lock, shielded), then cancelled again, which cuts the
cleanup short (the lock is then left; `syncd unlock` or the next run releases it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from syncd.errors import Interrupted

log = logging.getLogger(__name__)

T = TypeVar("T")

LAST_GRACE_S = 1.0
"""After the second cancel, how long a task may take to end before it is left behind."""
POLL_S = 0.1
"""How often a plain `threading.Event` (not a `Stop`) is looked at from a loop."""


class Stop(threading.Event):
    """A stop request that calls back its listeners when set (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""
        self.limit_s = 30.0
        """How long a process may take to stop once this is set (`daemon.stop_timeout_s`)."""
        self._listeners: dict[int, Callable[[], None]] = {}
        self._next = 0
        # Re-entrant: a signal handler may set the stop while its own thread registers.
        self._mutex = threading.RLock()

    def set(self, reason: str = "stop requested") -> None:
        """Set the stop (the first reason given is kept) and call every listener."""
        with self._mutex:
            if not self.is_set():
                self.reason = reason
            listeners = list(self._listeners.values())
        super().set()
        for listener in listeners:
            try:
                listener()
            except Exception:  # a listener whose loop has ended: nothing left to stop
                log.debug("stop listener failed", exc_info=True)

    @property
    def listened(self) -> bool:
        """Whether anything listens now (an apply or a job that can stop on time)."""
        with self._mutex:
            return bool(self._listeners)

    def listen(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the stop is set (at once if it is); return the unlistener."""
        with self._mutex:
            key, self._next = self._next, self._next + 1
            self._listeners[key] = callback
        if self.is_set():
            callback()
        return lambda: self._forget(key)

    def _forget(self, key: int) -> None:
        with self._mutex:
            self._listeners.pop(key, None)


@contextlib.contextmanager
def linked(parent: threading.Event | None) -> Iterator[Stop]:
    """Yield a new Stop that is set (with the parent's reason) while the block runs if
    `parent` is set; a plain event is looked at on entry only."""
    child = Stop()
    if isinstance(parent, Stop):
        unlisten = parent.listen(lambda: child.set(parent.reason))
        try:
            yield child
        finally:
            unlisten()
        return
    if parent is not None and parent.is_set():
        child.set()
    yield child


def reason_of(stop: threading.Event | None) -> str:
    """Return why `stop` was set ("stop requested" for a plain event)."""
    return (stop.reason if isinstance(stop, Stop) else "") or "stop requested"


_current = threading.local()


@contextlib.contextmanager
def scope(stop: threading.Event | None) -> Iterator[None]:
    """Make `stop` this thread's current stop for the block."""
    before = getattr(_current, "stop", None)
    _current.stop = stop
    try:
        yield
    finally:
        _current.stop = before


def current() -> threading.Event | None:
    """Return this thread's current stop (see `scope`), None if there is none."""
    stop = getattr(_current, "stop", None)
    return stop if isinstance(stop, threading.Event) else None


@contextlib.asynccontextmanager
async def bridged(stop: threading.Event | None) -> AsyncIterator[asyncio.Event]:
    """Yield an asyncio.Event of the running loop that is set once `stop` is.

    A `Stop` wakes the loop at once; a plain threading.Event is looked at every
    `POLL_S`; None never sets it.
    """
    flag = asyncio.Event()
    if stop is None:
        yield flag
        return
    loop = asyncio.get_running_loop()
    if isinstance(stop, Stop):

        def wake() -> None:
            loop.call_soon_threadsafe(flag.set)

        unlisten = stop.listen(wake)
        try:
            yield flag
        finally:
            unlisten()
        return
    poller = asyncio.create_task(_poll(stop, flag))
    try:
        yield flag
    finally:
        poller.cancel()


async def _poll(stop: threading.Event, flag: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(POLL_S)
    flag.set()


async def cancel_within(tasks: Iterable[asyncio.Task[Any]], grace_s: float) -> bool:
    """Cancel `tasks`, wait up to `grace_s` for them to end, then cancel those left again
    and wait `LAST_GRACE_S` more; return whether all ended."""
    pending = {t for t in tasks if not t.done()}
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=grace_s)
    for task in pending:
        task.cancel()  # cuts a shielded cleanup short (an EF-45 lock release)
    if pending:
        _, pending = await asyncio.wait(pending, timeout=LAST_GRACE_S)
    return not pending


def run(
    main: Coroutine[Any, Any, T],
    stop: threading.Event | None = None,
    *,
    grace_s: float = 5.0,
    what: str = "the run",
) -> T:
    """Run `main` on a new event loop (as `asyncio.run`) until it ends or the stop is set.

    `stop` defaults to this thread's current stop. Once set, `main` is cancelled within
    `grace_s` (`cancel_within`) and Interrupted is raised naming `what` and the reason.
    """
    return asyncio.run(_until_stopped(main, stop if stop is not None else current(), grace_s, what))


async def _until_stopped(
    main: Coroutine[Any, Any, T], stop: threading.Event | None, grace_s: float, what: str
) -> T:
    task = asyncio.ensure_future(main)
    if stop is None:
        return await task
    async with bridged(stop) as flag:
        waiter = asyncio.ensure_future(flag.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        await cancel_within([task], grace_s)
    raise Interrupted(f"{what} was interrupted: {reason_of(stop)}")
