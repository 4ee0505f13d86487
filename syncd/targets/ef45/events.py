"""An EF-45 terminal's access logs as `AccessEvent`s (the `CollectsEvents` capability).

The cursor is the last log id stored: a read returns the logs after it, all logs the
first time. `user_uuid` is the person key. The terminal's logs are deleted only when
`delete_logs_after_collect` is set, and only once the engine has committed them
(`committed`). *Unverified*: a terminal whose log ids restart (its log database wiped)
has ids below the cursor; those are not collected until the cursor is reset.

Log ids are checked (`ids.is_log_id`: an int in 0 … LOG_ID_MAX): an entry without one is
skipped with a warning; an entry whose `user_uuid` is malformed is kept without a person
(the event happened; the id is not stored). A stored cursor that is not a log id (a value
an older syncd stored) is discarded with a warning and the logs are read from the start,
so the next collect converges with no manual step (stored events are not duplicated:
the engine keeps one event per remote id).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from syncd.errors import cut
from syncd.model import ALLOWED, DENIED, AccessEvent
from syncd.targets.base import EventBatch, EventQuery
from syncd.targets.ef45.client import Ef45Client
from syncd.targets.ef45.ids import LOG_ID_MAX, is_log_id, is_user_uuid, log_cursor, shown

log = logging.getLogger(__name__)


class Ef45EventReader:
    """Reads one locked terminal's logs (`EventReader`)."""

    def __init__(self, client: Ef45Client, *, name: str, zone: ZoneInfo, delete_after: bool):
        self.client = client
        self.name = name
        self.zone = zone
        self.delete_after = delete_after
        self._ids: list[int] = []

    async def read(self, query: EventQuery) -> EventBatch:
        """Return the logs after the cursor (a log id) and the new cursor (the last id)."""
        cursor = self._cursor(query.cursor)
        logs = (
            self.client.iter_logs_between(cursor + 1, LOG_ID_MAX)
            if cursor is not None and cursor < LOG_ID_MAX
            else self.client.iter_logs()
        )
        batch: list[AccessEvent] = []
        ids: list[int] = []
        skipped = 0
        async for entry in logs:
            log_id = entry.get("id")
            if not is_log_id(log_id):
                skipped += 1
                continue
            ids.append(log_id)
            batch.append(ef45_event(self.name, entry, self.zone, query.now))
        if skipped:
            log.warning("%s: %d log entries without a valid id skipped", self.name, skipped)
        self._ids = ids
        kept = str(cursor) if cursor is not None else None
        return EventBatch(tuple(batch), str(max(ids)) if ids else kept)

    def _cursor(self, stored: str | None) -> int | None:
        """Return the stored cursor as a log id; None (read all) if there is none or it is
        not one, with a warning."""
        cursor = log_cursor(stored)
        if stored is not None and cursor is None:
            log.warning(
                "%s: discarded a stored events cursor that is not a log id: %s",
                self.name,
                shown(stored),
            )
        return cursor

    async def committed(self, batch: EventBatch) -> None:
        """Delete the logs just read from the terminal, if so configured."""
        if self._ids and self.delete_after:
            await self.client.delete_logs_between(min(self._ids), max(self._ids))


def ef45_event(target: str, entry: Mapping[str, Any], zone: ZoneInfo, now: datetime) -> AccessEvent:
    """Return the AccessEvent of one EF-45 log entry.

    A timestamp without a zone is the terminal's wall time in `zone`; an unreadable one
    becomes `now`. The matched face image is never kept.
    """
    event_type = str(entry.get("event_type") or "Unknown")
    additional = str(entry.get("additional_data") or "")
    info = str(entry.get("info") or "")
    person = entry.get("user_uuid")
    if person is not None and person != "" and not is_user_uuid(person):
        log.warning(
            "%s: log %s names a malformed user_uuid; kept without a person", target, entry["id"]
        )
        person = None
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
