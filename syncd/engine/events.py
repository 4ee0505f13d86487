"""Collect access events from every target into the ledger (`syncd events collect`).

Per target, independently (one that fails is reported and never stops the others):

- CLUe: `iter_events` from where `ClueTarget.events_read_from` says (the cursor
  `events:<target>`, the last `eventAt` seen, less `events_overlap_s`: events that reach
  the cloud late, from a device that was offline, still get read; without a cursor,
  `events_lookback_days` back), up to now, in windows of at most 7 days. The person is
  the one whose auth the event names (`authId` → the ledger's remote id), else the
  event's `userId`.
- EF-45: the logs after the cursor `events:<target>` (the last log id stored), all logs
  the first time. `user_uuid` is the person key. The terminal's logs are deleted only
  when `delete_logs_after_collect` is set, and only once they are committed.

Rows are committed first and the cursor moved after, so a crash between the two reads
some events again; the ledger's unique (target, remote_id) stores each once.
*Unverified*: a terminal whose log ids restart (its log database wiped) has ids below
the cursor; those are not collected until the cursor is reset (`cursors` table).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from syncd.engine.apply import Clock
from syncd.engine.run import Engine
from syncd.errors import SyncdError, cut
from syncd.ledger.events import (
    ALLOWED,
    DENIED,
    AccessEvent,
    person_keys_by_remote_id,
    store_events,
)
from syncd.ledger.store import Ledger
from syncd.targets.base import Target
from syncd.targets.clue.target import EPOCH, ClueTarget, epoch_ms
from syncd.targets.ef45.target import Ef45Target

log = logging.getLogger(__name__)

LOG_ID_MAX = 2**31 - 1


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


def collect_events(engine: Engine) -> CollectReport:
    """Collect the new events of every target of `engine` into its ledger (daemon job)."""
    return collect_from(engine.ledger, engine.targets, engine.clock)


def collect_from(ledger: Ledger, targets: Mapping[str, Target], clock: Clock) -> CollectReport:
    """Collect every target's new events into `ledger`; return one result per target.

    Targets of kinds without events are left out. A target that fails (down, key
    refused) gets a result with `error`; the others are collected all the same.
    """
    return CollectReport(tuple(asyncio.run(_collect_all(ledger, targets, clock))))


async def _collect_all(
    ledger: Ledger, targets: Mapping[str, Target], clock: Clock
) -> list[Collected]:
    jobs = [
        _guarded(name, _collector(name, target, ledger, clock))
        for name, target in sorted(targets.items())
        if isinstance(target, ClueTarget | Ef45Target)
    ]
    return list(await asyncio.gather(*jobs))


def _collector(
    name: str, target: Target, ledger: Ledger, clock: Clock
) -> Coroutine[Any, Any, Collected]:
    if isinstance(target, ClueTarget):
        return _collect_clue(name, target, ledger, clock)
    assert isinstance(target, Ef45Target)
    return _collect_ef45(name, target, ledger, clock)


async def _guarded(name: str, job: Coroutine[Any, Any, Collected]) -> Collected:
    try:
        result = await job
    except SyncdError as exc:
        log.warning("events of %s not collected: %s", name, exc)
        return Collected(name, error=cut(f"{type(exc).__name__}: {exc}"))
    return result


# --- CLUe -----------------------------------------------------------------------------


async def _collect_clue(name: str, target: ClueTarget, ledger: Ledger, clock: Clock) -> Collected:
    cursor = await asyncio.to_thread(ledger.get_cursor, cursor_name(name))
    now_ms = epoch_ms(clock())
    since = target.events_read_from(None if cursor is None else int(cursor), now_ms)
    auth_keys = await asyncio.to_thread(person_keys_by_remote_id, ledger.engine, name)
    batch: list[AccessEvent] = []
    last = int(cursor) if cursor is not None else None
    async with target.client() as client:
        async for raw in client.iter_events(since_ms=since, until_ms=now_ms):
            event = clue_event(name, raw, auth_keys, clock())
            batch.append(event)
            at = epoch_ms(event.occurred_at)
            last = at if last is None else max(last, at)
    return await _commit(ledger, name, batch, None if last is None else str(last), clock)


def clue_event(
    target: str, raw: Mapping[str, Any], auth_keys: Mapping[str, str], now: datetime
) -> AccessEvent:
    """Return the AccessEvent of one CLUe event (`now` stands in for a missing eventAt)."""
    event_type = str(raw.get("eventType") or "UNKNOWN")
    at = raw.get("eventAt")
    at_ok = isinstance(at, int) and not isinstance(at, bool)
    occurred = EPOCH + timedelta(milliseconds=at) if isinstance(at, int) and at_ok else now
    auth_id, user_id = raw.get("authId"), raw.get("userId")
    person = auth_keys.get(str(auth_id)) if auth_id is not None else None
    if person is None and user_id not in (None, ""):
        person = str(user_id)
    return AccessEvent(
        target=target,
        remote_id=_clue_remote_id(raw),
        occurred_at=occurred,
        event_type=event_type[:64],
        person_key=person,
        result=clue_result(event_type),
        detail=_clue_detail(raw),
    )


def clue_result(event_type: str) -> str | None:
    """Return "allowed", "denied" or None (not an access decision) for a CLUe event type."""
    upper = event_type.upper()
    if upper.endswith("_AUTH_SUCCESS"):
        return ALLOWED
    if "_AUTH_FAIL" in upper or upper.endswith("_DENIED"):
        return DENIED
    return None


def _clue_remote_id(raw: Mapping[str, Any]) -> str:
    log_id = raw.get("logId")
    if log_id not in (None, ""):
        return str(log_id)[:128]
    # No logId: the device's own id is the next best identity.
    return f"device:{raw.get('deviceId')}:{raw.get('localLogId')}:{raw.get('eventAt')}"


def _clue_detail(raw: Mapping[str, Any]) -> str | None:
    parts = []
    if raw.get("doorId") is not None:
        door = f"door {raw['doorId']}"
        parts.append(f"{door} ({raw['doorName']})" if raw.get("doorName") else door)
    if raw.get("deviceId") is not None:
        parts.append(f"device {raw['deviceId']}")
    return cut(", ".join(parts)) if parts else None


# --- EF-45 ----------------------------------------------------------------------------


async def _collect_ef45(name: str, target: Ef45Target, ledger: Ledger, clock: Clock) -> Collected:
    cursor = await asyncio.to_thread(ledger.get_cursor, cursor_name(name))
    batch: list[AccessEvent] = []
    ids: list[int] = []
    async with target.client() as client:
        logs = (
            client.iter_logs_between(int(cursor) + 1, LOG_ID_MAX)
            if cursor is not None
            else client.iter_logs()
        )
        async for entry in logs:
            log_id = entry.get("id")
            if not isinstance(log_id, int):
                log.warning("%s: log entry without an integer id skipped", name)
                continue
            ids.append(log_id)
            batch.append(ef45_event(name, entry, target.zone, clock()))
        last = str(max(ids)) if ids else cursor
        result = await _commit(ledger, name, batch, last, clock)
        if ids and target.config.delete_logs_after_collect:
            await client.delete_logs_between(min(ids), max(ids))
    return result


def ef45_event(target: str, entry: Mapping[str, Any], zone: ZoneInfo, now: datetime) -> AccessEvent:
    """Return the AccessEvent of one EF-45 log entry.

    A timestamp without a zone is the terminal's wall time in `zone`; an unreadable one
    becomes `now`. The matched face image is never kept.
    """
    event_type = str(entry.get("event_type") or "Unknown")
    additional = str(entry.get("additional_data") or "")
    info = str(entry.get("info") or "")
    person = entry.get("user_uuid")
    detail = " / ".join(part for part in (info, additional) if part)
    return AccessEvent(
        target=target,
        remote_id=str(entry["id"]),
        occurred_at=_ef45_time(entry.get("timestamp"), zone, now),
        event_type=event_type[:64],
        person_key=str(person) if person else None,
        result=ef45_result(event_type, additional),
        detail=cut(detail) if detail else None,
    )


def ef45_result(event_type: str, additional_data: str) -> str | None:
    """Return "allowed", "denied" or None for an EF-45 log (only recognitions decide)."""
    if event_type.lower() != "recognition":
        return None
    text = additional_data.lower()
    if "allow" in text:
        return ALLOWED
    if any(word in text for word in ("den", "reject", "fail", "refus")):
        return DENIED
    return None


def _ef45_time(value: object, zone: ZoneInfo, now: datetime) -> datetime:
    if not isinstance(value, str) or not value:
        return now
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# --- ledger ---------------------------------------------------------------------------


async def _commit(
    ledger: Ledger, name: str, batch: list[AccessEvent], cursor: str | None, clock: Clock
) -> Collected:
    """Store `batch`, then (only then) move the cursor; return the counts."""
    stored = await asyncio.to_thread(store_events, ledger.engine, batch, clock())
    if cursor is not None and batch:
        await asyncio.to_thread(ledger.set_cursor, cursor_name(name), cursor, clock())
    return Collected(name, read=len(batch), stored=stored, cursor=cursor)
