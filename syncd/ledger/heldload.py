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

from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.pins import PinKeys, open_json, record_aad
from syncd.ledger.rows import by_keys, raw_rows
from syncd.ledger.schema import SETTLED, target_records
from syncd.model import HeldRecord, HeldTable, Record, RecordState

_c = target_records.c


def load_held_tables(conn: Connection, target: str | None = None) -> dict[str, HeldTable]:
    """Return target → HeldTable of every record held (one target's only, when named).

    Records are never loaded (`HeldRecord.record` is None), nor their last error.
    """
    settled: dict[str, dict[str, str]] = {}
    remote_ids: dict[str, dict[str, str]] = {}
    unsettled: set[str] = set()
    for rows in raw_rows(conn, _settled_query(target)):
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


def load_partial_tables(conn: Connection, keys: Collection[str]) -> dict[str, HeldTable]:
    """Return target → partial HeldTable (`model.HeldTable`): every record that is not
    settled, the settled records of the people `keys` only, and each target's count of
    settled records, all by index (0005's partial indexes, the primary key)."""
    count_query = sa.select(_c.target, sa.func.count()).where(SETTLED).group_by(_c.target)
    counts: dict[str, int] = {name: int(n) for name, n in conn.execute(count_query)}
    others = _load_unsettled(conn, None)
    settled: dict[str, dict[str, str]] = {name: {} for name in counts}
    remote_ids: dict[str, dict[str, str]] = {}
    if counts and keys:
        # Each target named: the primary key (target, person_key) finds each record.
        query = sa.select(_c.target, _c.person_key, _c.digest, _c.remote_id).where(
            _c.target.in_(sorted(counts)), SETTLED
        )
        for rows in by_keys(conn, query, _c.person_key, keys):
            for name, key, dig, remote in rows:
                settled[name][key] = dig
                if remote != key:
                    remote_ids.setdefault(name, {})[key] = remote
    return {
        name: HeldTable(
            name,
            settled.get(name, {}),
            remote_ids.get(name, {}),
            others.get(name, {}),
            settled_total=counts.get(name, 0),
        )
        for name in counts.keys() | others.keys()
    }


def unsettled_keys(conn: Connection) -> set[str]:
    """Return the people with a record that is not settled on some target (by index)."""
    query = sa.select(_c.person_key).where(sa.not_(SETTLED)).distinct()
    return set(conn.execute(query).scalars())


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
    found: dict[tuple[str, str], Record] = {}
    parsed: dict[str, Record] = {}  # JSON text → record: parsing costs more than hashing
    for target, person_keys in wanted.items():
        query = sa.select(_c.person_key, _c.record).where(
            _c.target == target, _c.record.is_not(None)
        )
        for rows in by_keys(conn, query, _c.person_key, person_keys):
            for row in rows:
                key, text = row.person_key, row.record
                record = parsed.get(text)
                if record is None:
                    record = parsed[text] = open_json(text, pins, record_aad(target, key))
                found[(target, key)] = record
    return found
