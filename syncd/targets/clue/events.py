"""A CLUe place's events as `AccessEvent`s (the `CollectsEvents` capability).

The cursor is the last `eventAt` seen (epoch ms). A read covers from where the target
says (`ClueTarget.events_read_from`: the cursor less `events_overlap_s`, so events that
reach the cloud late, from a device that was offline, still get read; the ledger stores
each event once; without a cursor, `events_lookback_days` back) up to now, in windows of
at most 7 days (`ClueClient.iter_events`). The person is the one whose auth the event
names (`authId` → the ledger's remote id, `EventQuery.person_keys`), else the event's
`userId`.

What comes from outside is checked first (`syncd.targets.clue.ids`): a stored cursor that
is not epoch ms in a sane range is discarded with a warning (the read falls back to
`events_lookback_days`); an event whose id cannot be stored (a logId, or the device ids
standing in for one, too long or with control characters) is skipped with a warning; an
`eventAt` out of range reads as missing and never moves the cursor, nor does one more
than a day ahead of now; a `userId`, event type or door name that is not clean text is
left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from syncd.errors import cut
from syncd.model import ALLOWED, DENIED, AccessEvent
from syncd.targets.base import EventBatch, EventQuery
from syncd.targets.clue import ids
from syncd.targets.clue.client import ClueClient
from syncd.targets.clue.timing import EPOCH, epoch_ms

log = logging.getLogger(__name__)

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
        cursor = self._cursor(query.cursor, now_ms)
        since = self.read_from(cursor, now_ms)
        batch: list[AccessEvent] = []
        last = cursor
        async for raw in self.client.iter_events(since_ms=since, until_ms=now_ms):
            try:
                event = clue_event(self.name, raw, query.person_keys, query.now)
            except MalformedEvent as exc:
                log.warning("%s: an event skipped: %s", self.client.place, exc)
                continue
            batch.append(event)
            at = ids.epoch_ms_value(raw.get("eventAt"))
            if at is not None and at <= now_ms + ids.CURSOR_AHEAD_MS:
                last = at if last is None else max(last, at)
        return EventBatch(tuple(batch), None if last is None else str(last))

    def _cursor(self, stored: str | None, now_ms: int) -> int | None:
        """Return the stored cursor as epoch ms; discard (warning) one out of range."""
        cursor = ids.cursor_ms(stored, now_ms)
        if cursor is None and stored is not None:
            log.warning(
                "%s: stored events cursor %s is not epoch ms up to a day ahead: discarded, "
                "reading from events_lookback_days back",
                self.name,
                ids.shown(stored),
            )
        return cursor

    async def committed(self, batch: EventBatch) -> None:
        """Nothing to do: CLUe keeps its events."""


class MalformedEvent(ValueError):
    """An event whose identity cannot be stored (its logId, or the device ids)."""


def clue_event(
    target: str, raw: Mapping[str, Any], auth_keys: Mapping[str, str], now: datetime
) -> AccessEvent:
    """Return the AccessEvent of one CLUe event (`now` stands in for a missing or
    out-of-range eventAt); raise MalformedEvent if it has no storable identity."""
    event_type = ids.clean_text(raw.get("eventType"), 64) or "UNKNOWN"
    at = ids.epoch_ms_value(raw.get("eventAt"))
    occurred = EPOCH + timedelta(milliseconds=at) if at is not None else now
    auth_id = ids.auth_id(raw.get("authId"))
    person = auth_keys.get(str(auth_id)) if auth_id is not None else None
    if person is None:
        person = ids.user_key(_text(raw.get("userId")))
    return AccessEvent(
        target=target,
        remote_id=_clue_remote_id(raw),
        occurred_at=occurred,
        event_type=event_type,
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
        checked = ids.log_id(log_id)
        if checked is None:
            raise MalformedEvent(f"logId {ids.shown(log_id)} is too long or not clean text")
        return checked
    # No logId: the device's own id is the next best identity.
    made = f"device:{raw.get('deviceId')}:{raw.get('localLogId')}:{raw.get('eventAt')}"
    if ids.clean_text(made, ids.MAX_LOG_ID_LEN) is None:
        raise MalformedEvent(f"no logId, and device ids {ids.shown(made)} are not clean text")
    return made


def _text(value: object) -> str | None:
    """`value` as text if it is a str or an int (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


def _clue_detail(raw: Mapping[str, Any]) -> str | None:
    parts = []
    door_id, device_id = _text(raw.get("doorId")), _text(raw.get("deviceId"))
    door_name = ids.clean_text(raw.get("doorName"), 200)
    if door_id is not None and not ids.has_control(door_id):
        parts.append(f"door {door_id} ({door_name})" if door_name else f"door {door_id}")
    if device_id is not None and not ids.has_control(device_id):
        parts.append(f"device {device_id}")
    return cut(", ".join(parts)) if parts else None
