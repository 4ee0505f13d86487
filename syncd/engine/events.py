"""Collect access events from every target into the ledger (`syncd events collect`).

Per target that collects events (`targets.base.CollectsEvents`), independently (one that
fails is reported and never stops the others): read the stored cursor `events:<target>`,
ask the target's `EventReader` for the events after it (typed `AccessEvent`s; what a
cursor means is the target's: `targets.clue.events`, `targets.ef45.events`), store them,
and only then move the cursor and tell the reader they are committed (an EF-45 may then
clear its logs).

Rows are committed first and the cursor moved after, so a crash between the two reads
some events again; the ledger's unique (target, remote_id) stores each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from syncd.engine import stopping
from syncd.engine.apply import Clock
from syncd.engine.run import Syncer
from syncd.errors import SyncdError, cut
from syncd.ledger.events import person_keys_by_remote_id, store_events
from syncd.ledger.store import Ledger
from syncd.targets.base import CollectsEvents, EventBatch, EventQuery, Target

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Collected:
    """One target's collect: events read, new ones stored, the cursor after, or the error."""

    target: str
    read: int = 0
    stored: int = 0
    cursor: str | None = None
    error: str | None = None


def cursor_name(target: str) -> str:
    """Return the `cursors` row name of a target's events."""
    return f"events:{target}"


@dataclass(frozen=True, slots=True)
class CollectReport:
    """The results of one collect, one per target; `str()` is a one-line summary."""

    results: tuple[Collected, ...]

    @property
    def failed(self) -> list[Collected]:
        """The targets whose events could not be collected."""
        return [r for r in self.results if r.error is not None]

    def __str__(self) -> str:
        return "; ".join(
            f"{r.target}: failed" if r.error else f"{r.target}: {r.stored} new of {r.read}"
            for r in self.results
        )


def collect_events(engine: Syncer) -> CollectReport:
    """Collect the new events of every target of `engine` into its ledger (daemon job)."""
    return collect_from(engine.ledger, engine.targets, engine.clock)


def collect_from(ledger: Ledger, targets: Mapping[str, Target], clock: Clock) -> CollectReport:
    """Collect every target's new events into `ledger`; return one result per target.

    Targets of kinds without events are left out. A target that fails (down, key
    refused) gets a result with `error`; the others are collected all the same.
    """
    found = stopping.run(_collect_all(ledger, targets, clock), what="the events collect")
    return CollectReport(tuple(found))


async def _collect_all(
    ledger: Ledger, targets: Mapping[str, Target], clock: Clock
) -> list[Collected]:
    jobs = [
        _guarded(name, target, ledger, clock)
        for name, target in sorted(targets.items())
        if isinstance(target, CollectsEvents)
    ]
    return list(await asyncio.gather(*jobs))


async def _guarded(name: str, target: CollectsEvents, ledger: Ledger, clock: Clock) -> Collected:
    try:
        result = await _collect(name, target, ledger, clock)
    except SyncdError as exc:
        log.warning("events of %s not collected: %s", name, exc)
        return Collected(name, error=cut(f"{type(exc).__name__}: {exc}"))
    return result


async def _collect(name: str, target: CollectsEvents, ledger: Ledger, clock: Clock) -> Collected:
    cursor = await asyncio.to_thread(ledger.get_cursor, cursor_name(name))
    keys = await asyncio.to_thread(person_keys_by_remote_id, ledger.db, name)
    async with target.events() as reader:
        batch = await reader.read(EventQuery(cursor=cursor, now=clock(), person_keys=keys))
        result = await _commit(ledger, name, batch, clock)
        if batch.events:
            await reader.committed(batch)
    return result


async def _commit(ledger: Ledger, name: str, batch: EventBatch, clock: Clock) -> Collected:
    """Store `batch`, then (only then) move the cursor; return the counts."""
    stored = await asyncio.to_thread(store_events, ledger.db, batch.events, clock())
    if batch.cursor is not None and batch.events:
        await asyncio.to_thread(ledger.set_cursor, cursor_name(name), batch.cursor, clock())
    return Collected(name, read=len(batch.events), stored=stored, cursor=batch.cursor)
