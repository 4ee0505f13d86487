"""Access events in the ledger: store each once, query them, and a person's last access.

Every target's events arrive here in one shape (`AccessEvent`). The table's unique
(target, remote_id) makes storing idempotent: collecting the same window twice, or two
collectors racing, stores each event once (`ON CONFLICT DO NOTHING`, on SQLite and on
PostgreSQL alike). Times are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from syncd.errors import LedgerError, ledger_failing
from syncd.ledger.schema import events, target_records
from syncd.model import ALLOWED, DENIED, AccessEvent

__all__ = [  # AccessEvent and the results live in model: targets make them, the ledger stores them
    "ALLOWED",
    "DENIED",
    "AccessEvent",
    "StoredEvent",
    "last_access",
    "list_events",
    "person_keys_by_remote_id",
    "store_events",
]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the ledger holds it, with when it was collected."""

    target: str
    remote_id: str
    occurred_at: datetime
    event_type: str
    person_key: str | None
    result: str | None
    detail: str | None
    collected_at: datetime


def _insert(engine: sa.Engine) -> sa.Insert:
    # RETURNING counts what was inserted: on PostgreSQL (psycopg) the rowcount of an
    # insert SQLAlchemy gave an implicit RETURNING reads 0 though the row was stored.
    # The dialects are imported here, not at the top: a plan never stores events, and
    # loading the PostgreSQL dialect costs a SQLite ledger 30 ms at each start.
    from sqlalchemy.dialects import postgresql, sqlite

    name = engine.dialect.name
    statement: sa.Insert
    if name == "postgresql":
        statement = postgresql.insert(events).on_conflict_do_nothing(
            index_elements=["target", "remote_id"]
        )
    elif name == "sqlite":
        statement = sqlite.insert(events).on_conflict_do_nothing(
            index_elements=["target", "remote_id"]
        )
    else:
        raise LedgerError(f"events: unsupported ledger database {name!r}")
    return statement.returning(events.c.id)


def store_events(engine: sa.Engine, batch: Iterable[AccessEvent], now: datetime) -> int:
    """Store the events of `batch` not stored yet, in one transaction; return how many."""
    statement = _insert(engine)
    stored = 0
    try:
        with engine.begin() as conn:
            for event in batch:
                result = conn.execute(
                    statement,
                    {
                        "target": event.target,
                        "remote_id": event.remote_id,
                        "occurred_at": event.occurred_at,
                        "person_key": event.person_key,
                        "event_type": event.event_type,
                        "result": event.result,
                        "detail": event.detail,
                        "collected_at": now,
                    },
                )
                stored += len(result.all())
    except sa.exc.OperationalError as exc:
        raise ledger_failing(exc) from None
    return stored


def list_events(
    engine: sa.Engine,
    *,
    person_key: str | None = None,
    since: datetime | None = None,
    target: str | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """Return at most `limit` stored events matching the filters, newest first."""
    query = sa.select(events).order_by(events.c.occurred_at.desc(), events.c.id.desc())
    if person_key is not None:
        query = query.where(events.c.person_key == person_key)
    if since is not None:
        query = query.where(events.c.occurred_at >= since)
    if target is not None:
        query = query.where(events.c.target == target)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit)).all()
    return [
        StoredEvent(
            target=row.target,
            remote_id=row.remote_id,
            occurred_at=row.occurred_at,
            event_type=row.event_type,
            person_key=row.person_key,
            result=row.result,
            detail=row.detail,
            collected_at=row.collected_at,
        )
        for row in rows
    ]


def last_access(engine: sa.Engine, person_key: str) -> datetime | None:
    """Return when `person_key` last went through a door (an allowed event), or None."""
    query = sa.select(sa.func.max(events.c.occurred_at)).where(
        events.c.person_key == person_key, events.c.result == ALLOWED
    )
    with engine.connect() as conn:
        value = conn.execute(query).scalar()  # max() keeps the column's type: aware UTC
    return value if isinstance(value, datetime) else None


def person_keys_by_remote_id(engine: sa.Engine, target: str) -> dict[str, str]:
    """Return remote id → person key of every record `target` holds (CLUe: authId)."""
    query = sa.select(target_records.c.remote_id, target_records.c.person_key).where(
        target_records.c.target == target, target_records.c.remote_id.is_not(None)
    )
    with engine.connect() as conn:
        return {str(remote): str(key) for remote, key in conn.execute(query)}
