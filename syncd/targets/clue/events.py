"""A CLUe place's events as `AccessEvent`s (the `CollectsEvents` capability).

The cursor is the last `eventAt` seen (epoch ms). A read covers from where the target
says (`ClueTarget.events_read_from`: the cursor less `events_overlap_s`, so events that
reach the cloud late, from a device that was offline, still get read; the ledger stores
each event once; without a cursor, `events_lookback_days` back) up to now, in windows of
at most 7 days (`ClueClient.iter_events`). The person is the one whose auth the event
names (`authId` → the ledger's remote id, `EventQuery.person_keys`), else the event's
`userId`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from syncd.errors import cut
from syncd.model import ALLOWED, DENIED, AccessEvent
from syncd.targets.base import EventBatch, EventQuery
from syncd.targets.clue.client import ClueClient
from syncd.targets.clue.timing import EPOCH, epoch_ms

ReadFrom = Callable[[int | None, int], int]
"""Given (cursor ms or None, now ms), return the epoch ms a read starts from."""


class ClueEventReader:
    """Reads one place's events through an open client (`EventReader`)."""

    def __init__(self, client: ClueClient, *, name: str, read_from: ReadFrom) -> None:
        self.client = client
        self.name = name
        self.read_from = read_from

    async def read(self, query: EventQuery) -> EventBatch:
        """Return the events since the cursor (less the overlap) and the newest `eventAt`."""
        now_ms = epoch_ms(query.now)
        cursor = query.cursor
        since = self.read_from(None if cursor is None else int(cursor), now_ms)
        batch: list[AccessEvent] = []
        last = int(cursor) if cursor is not None else None
        async for raw in self.client.iter_events(since_ms=since, until_ms=now_ms):
            event = clue_event(self.name, raw, query.person_keys, query.now)
            batch.append(event)
            at = epoch_ms(event.occurred_at)
            last = at if last is None else max(last, at)
        return EventBatch(tuple(batch), None if last is None else str(last))

    async def committed(self, batch: EventBatch) -> None:
        """Nothing to do: CLUe keeps its events."""


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
