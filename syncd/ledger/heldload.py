"""Loading what every target holds, fast enough for a plan over a million records.

A plan reads every target record the ledger holds. As one SQLAlchemy row and one
HeldRecord each, a million records cost seconds and hundreds of MB, though almost all
of them are settled (`model.HeldTable`): for those a plan needs the person key and the
digest only. So one query returns, per record, the key and — for a settled record — its
digest and its remote id when that is not the key; its rows are read straight from the
DBAPI cursor, because building a SQLAlchemy Row per row costs as much as the query.
The few records that are not settled are then loaded in full by an ordinary query.
`load_records` then fetches the records behind a plan's actions, by key, their PINs
opened (`pins`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.pins import PinKeys, open_json, record_aad
from syncd.ledger.schema import target_records
from syncd.model import HeldRecord, HeldTable, Record, RecordState

_BATCH = 20_000
"""Rows fetched from the cursor at a time (memory stays flat while the dicts grow)."""

_c = target_records.c
SETTLED: sa.ColumnElement[bool] = sa.and_(
    _c.state == RecordState.OK.value,
    _c.digest.is_not(None),
    _c.remote_id.is_not(None),
    _c.created_by_syncd.is_(True),
    _c.disabled_since.is_(None),
    _c.attempts == 0,
    _c.next_attempt_at.is_(None),
)
"""A record `HeldTable` keeps as a digest (each term is true or false, never NULL)."""


def load_held_tables(conn: Connection, target: str | None = None) -> dict[str, HeldTable]:
    """Return target → HeldTable of every record held (one target's only, when named).

    Records are never loaded (`HeldRecord.record` is None), nor their last error.
    """
    settled: dict[str, dict[str, str]] = {}
    remote_ids: dict[str, dict[str, str]] = {}
    unsettled: set[str] = set()
    for rows in _raw_rows(conn, _settled_query(target)):
        for name, key, dig, remote in rows:
            if dig is None:
                unsettled.add(name)
                settled.setdefault(name, {})
                continue
            by_key = settled.get(name)
            if by_key is None:
                by_key = settled[name] = {}
            by_key[key] = dig
            if remote is not None:
                remote_ids.setdefault(name, {})[key] = remote
    others = _load_unsettled(conn, target) if unsettled else {}
    return {
        name: HeldTable(name, digests, remote_ids.get(name, {}), others.get(name, {}))
        for name, digests in settled.items()
    }


def _settled_query(target: str | None) -> sa.Select[Any]:
    """(target, key, digest if settled else NULL, remote id if settled and not the key)."""
    query = sa.select(
        _c.target,
        _c.person_key,
        sa.case((SETTLED, _c.digest), else_=sa.null()),
        sa.case((sa.and_(SETTLED, _c.remote_id != _c.person_key), _c.remote_id), else_=sa.null()),
    )
    return query if target is None else query.where(_c.target == target)


def _load_unsettled(conn: Connection, target: str | None) -> dict[str, dict[str, HeldRecord]]:
    query = sa.select(
        _c.target, _c.person_key, _c.state, _c.digest, _c.remote_id, _c.created_by_syncd,
        _c.disabled_since, _c.attempts, _c.next_attempt_at,
    ).where(sa.not_(SETTLED))  # fmt: skip
    if target is not None:
        query = query.where(_c.target == target)
    found: dict[str, dict[str, HeldRecord]] = {}
    for row in conn.execute(query):
        found.setdefault(row.target, {})[row.person_key] = HeldRecord(
            target=row.target,
            person_key=row.person_key,
            state=RecordState(row.state),
            digest=row.digest,
            remote_id=row.remote_id,
            created_by_syncd=bool(row.created_by_syncd),
            disabled_since=row.disabled_since,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
        )
    return found


def _raw_rows(conn: Connection, query: sa.Select[Any]) -> Iterator[Sequence[Any]]:
    """Yield batches of `query`'s rows as DBAPI tuples; only for columns needing no
    result processing (text), since SQLAlchemy's type handling is bypassed.

    PostgreSQL gets a server-side cursor, so that the client never holds the whole
    result at once (psycopg would otherwise receive all of it on execute).
    """
    compiled = query.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args: Any = params
    if compiled.positional:
        args = tuple(params[name] for name in compiled.positiontup or ())
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # an open Connection always has one
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="syncd_load_held")
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(compiled.string, args)
        while rows := cursor.fetchmany(_BATCH):
            yield rows
    finally:
        cursor.close()


def load_records(
    conn: Connection, keys: Iterable[tuple[str, str]], pins: PinKeys | None = None
) -> dict[tuple[str, str], Record]:
    """Return the records held for the given (target, person key) pairs that have one,
    PINs opened under `pins` (LedgerError for a sealed PIN without them).

    Equal records (a person's on ten terminals configured alike) are one shared object:
    records are read-only values. A sealed PIN makes each record's text unique.
    """
    wanted: dict[str, list[str]] = {}
    for target, key in keys:
        wanted.setdefault(target, []).append(key)
    query, chunk = _records_query(conn.dialect.name)
    found: dict[tuple[str, str], Record] = {}
    parsed: dict[str, Record] = {}  # JSON text → record: parsing costs more than hashing
    for target, person_keys in wanted.items():
        for start in range(0, len(person_keys), chunk):
            batch = {"target": target, "keys": person_keys[start : start + chunk]}
            for key, text in conn.execute(query, batch).all():
                record = parsed.get(text)
                if record is None:
                    record = parsed[text] = open_json(text, pins, record_aad(target, key))
                found[(target, key)] = record
    return found


def _records_query(dialect: str) -> tuple[sa.Select[Any], int]:
    """Return the query of records by target and keys, and how many keys it takes at once.

    PostgreSQL takes the keys as one array (`= ANY`): a long IN list costs it far more to
    plan than to run (100 000 records: 0.6 s against 4.7 s in lists of 500). Elsewhere an
    IN list, kept under SQLite's oldest limit of 999 parameters.
    """
    c = target_records.c
    match: sa.ColumnElement[bool]
    if dialect == "postgresql":
        # Imported here: on a SQLite ledger the PostgreSQL dialect is never loaded (25 ms).
        from sqlalchemy.dialects.postgresql import ARRAY

        match, chunk = c.person_key == sa.any_(sa.bindparam("keys", type_=ARRAY(sa.String))), 10_000
    else:
        match, chunk = c.person_key.in_(sa.bindparam("keys", expanding=True)), 500
    query = sa.select(c.person_key, c.record).where(
        c.target == sa.bindparam("target"), match, c.record.is_not(None)
    )
    return query, chunk
