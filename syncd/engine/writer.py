"""Group commit of apply's outcomes: one writer thread, many outcomes per transaction.

Committing each outcome alone made the writer thread the bottleneck of a large apply
(one transaction per action, and each SQLite call hands the GIL back and forth with the
event loop). Here the outcomes that arrive while one transaction commits are written
together in the next: every caller still waits for its own outcomes to be committed,
the commits are fewer. `write` returns once its outcomes are committed; `submit`
returns at once with a future that says when. If a group's transaction fails, its
outcomes are retried one by one, so each gets its own result (or its own error).

A group is opened by its first outcome and closed `GROUP_WINDOW_S` later, or as soon as
it holds `producers` outcomes (apply sets that to the number of targets still running):
apply queues an outcome and sends the target's next request before it waits for that
commit, so the pause costs a large apply little and lets the outcomes of the other
targets join the same transaction (a commit's fixed cost is several times a row's). A
lone producer never waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from syncd.ledger.outcomes import Outcome
from syncd.ledger.store import Ledger

GROUP_WINDOW_S = 0.003


class GroupWriter:
    """Writes outcomes through `ledger.record_outcomes` on `executor` (one thread)."""

    def __init__(self, ledger: Ledger, executor: ThreadPoolExecutor) -> None:
        self.ledger = ledger
        self.executor = executor
        self.producers = 1
        """How many callers submit at once: a group of that many outcomes closes early."""
        self._full: asyncio.Event | None = None  # set once the open group is big enough
        self._queue: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def write(self, outcomes: Sequence[Outcome]) -> None:
        """Return once all `outcomes` are committed; raise what the ledger raised."""
        await asyncio.gather(*(self.submit(outcome) for outcome in outcomes))

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue `outcome`; return a future done once it is committed (or failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((outcome, done))
        if self._full is not None and len(self._queue) >= self.producers:
            self._full.set()
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._gather()
                group, self._queue = self._queue, []
                try:
                    items = [item for item, _ in group]
                    await loop.run_in_executor(self.executor, self.ledger.record_outcomes, items)
                except Exception:
                    await self._one_by_one(group)
                    continue
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._draining = False

    async def _gather(self) -> None:
        """Wait until the open group holds `producers` outcomes, or `GROUP_WINDOW_S`."""
        if len(self._queue) >= self.producers:
            return
        self._full = asyncio.Event()
        try:
            async with asyncio.timeout(GROUP_WINDOW_S):
                await self._full.wait()
        except TimeoutError:
            pass
        finally:
            self._full = None

    async def _one_by_one(self, group: list[tuple[Outcome, asyncio.Future[None]]]) -> None:
        loop = asyncio.get_running_loop()
        for item, done in group:
            try:
                await loop.run_in_executor(self.executor, self.ledger.record_outcomes, [item])
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)
