"""Writing apply's outcomes into `target_records` and `changes`, a group at a time.

`write_outcomes` is what `Ledger.record_outcomes` runs inside its transaction. It gives
exactly the result of writing the outcomes one after another (a later outcome for the
same record sees what an earlier one wrote), but with a handful of statements for the
whole group: one read of the records concerned, then bulk deletes, inserts and updates
and one bulk insert of the audit rows. Per-outcome statements made the ledger writer
the bottleneck of a large apply (five statements a create). A record's PIN is sealed
as it is stored (`pins.seal_json`); its digest is the clear record's, keyed as the plan
made it (`Ledger.record_digest`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.outcomes import Outcome
from syncd.ledger.pins import PinKeys, record_aad, seal_json
from syncd.ledger.schema import changes, target_records
from syncd.model import Action, Op, RecordState, canonical_json

Key = tuple[str, str]
Row = dict[str, Any]

# Columns a stored record carries besides its key; an update rewrites all of them.
_VALUE_COLUMNS = tuple(c.name for c in target_records.c if c.name not in {"target", "person_key"})
# Row values per statement when reading the records concerned (SQLite's bound-parameter
# limit is far above this; PostgreSQL has none that matters here).
_READ_CHUNK = 400
# Built once (statement construction cost more than the query). `target IN … AND
# person_key IN …` is answered from the primary key on both databases; a row-value
# `(target, person_key) IN (…)` made SQLite scan the table.
_READ_ROWS = sa.select(target_records).where(
    target_records.c.target.in_(sa.bindparam("targets", expanding=True)),
    target_records.c.person_key.in_(sa.bindparam("keys", expanding=True)),
)


def write_outcomes(
    conn: Connection, outcomes: Sequence[Outcome], pins: PinKeys | None = None
) -> None:
    """Apply `outcomes` in order to the stored records and add their audit rows.

    "pending" (written before a create is sent) marks a record the target may now hold;
    it adds no audit row. Every other outcome adds one `changes` row. Records are stored
    with their PIN sealed under `pins` (LedgerError for a PIN without keys).
    """
    keys = {(o.action.target, o.action.person_key) for o in outcomes}
    stored = _read_rows(conn, keys)
    rows: dict[Key, Row | None] = dict(stored)
    audit: list[Row] = []
    for item in outcomes:
        key = (item.action.target, item.action.person_key)
        rows[key] = _row_after(item, rows.get(key), pins)
        if item.outcome != "pending":
            audit.append(_audit_row(item))
    _write_rows(conn, stored, rows)
    if audit:
        conn.execute(changes.insert(), audit)


def _read_rows(conn: Connection, keys: Iterable[Key]) -> dict[Key, Row]:
    wanted = set(keys)
    targets = sorted({target for target, _ in wanted})
    person_keys = sorted({person_key for _, person_key in wanted})
    found: dict[Key, Row] = {}
    for start in range(0, len(person_keys), _READ_CHUNK):
        chunk = person_keys[start : start + _READ_CHUNK]
        rows = conn.execute(_READ_ROWS, {"targets": targets, "keys": chunk}).mappings()
        for row in rows:
            key = (row["target"], row["person_key"])
            if key in wanted:  # the query reads the cross product of targets and keys
                found[key] = dict(row)
    return found


def _write_rows(conn: Connection, stored: dict[Key, Row], rows: dict[Key, Row | None]) -> None:
    deletes: list[Row] = []
    inserts: list[Row] = []
    updates: list[Row] = []
    for key, row in rows.items():
        before = stored.get(key)
        if row is None:
            if before is not None:
                deletes.append({"k_target": key[0], "k_person": key[1]})
        elif before is None:
            inserts.append(row)  # a new row: every column set by `_new_row`
        elif row != before:
            updates.append({"k_target": key[0], "k_person": key[1], **_values(row)})
    key_match = sa.and_(
        target_records.c.target == sa.bindparam("k_target"),
        target_records.c.person_key == sa.bindparam("k_person"),
    )
    if deletes:
        conn.execute(target_records.delete().where(key_match), deletes)
    if inserts:
        conn.execute(target_records.insert(), inserts)
    if updates:
        # No .values(): the SET clause comes from the column-named keys of each row.
        conn.execute(target_records.update().where(key_match), updates)


def _values(row: Row) -> Row:
    return {c: row.get(c) for c in _VALUE_COLUMNS}


def _row_after(item: Outcome, current: Row | None, pins: PinKeys | None) -> Row | None:
    """Return the stored record after `item`, given the record before it (None: none)."""
    if item.outcome == "pending":
        return _after_pending(item.action, current, item.now)
    if item.outcome == "applied":
        return _after_applied(item.action, current, item.remote_id, item.now, pins)
    return _after_unapplied(item, current)


def _after_pending(action: Action, current: Row | None, now: datetime) -> Row | None:
    # Written before a create is sent: if the process dies after the target said yes and
    # before the outcome is recorded, the next plan still knows the target may hold the
    # person (an active person is created again, which finds and updates them; a leaver
    # is cleaned up at once) instead of believing the target holds nothing.
    if current is not None and current.get("digest") is not None:
        return current
    if current is None:
        return _new_row(action, state=RecordState.PENDING.value, updated_at=now)
    return {**current, "state": RecordState.PENDING.value, "updated_at": now}


def _after_applied(
    action: Action, current: Row | None, remote_id: str | None, now: datetime, pins: PinKeys | None
) -> Row | None:
    if action.op is Op.DELETE:
        return None
    disabled_since = None
    if not action.active_after:
        disabled_since = current["disabled_since"] if current and current["disabled_since"] else now
    values: Row = {
        "remote_id": remote_id or (current["remote_id"] if current else None),
        "digest": action.after_digest,
        "record": seal_json(action.record, pins, record_aad(action.target, action.person_key)),
        "state": RecordState.OK.value,
        "disabled_since": disabled_since,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": None,
        "updated_at": now,
    }
    return _merged(action, current, values)


def _after_unapplied(item: Outcome, current: Row | None) -> Row | None:
    action = item.action
    if current is None and action.op is Op.DELETE:
        return None  # an orphan's delete (deep run): no record is held, the finding stays
    blocked = item.outcome == "blocked"
    attempts = (current["attempts"] if current else 0) + (0 if blocked else 1)
    values: Row = {
        "state": (RecordState.BLOCKED if blocked else RecordState.FAILED).value,
        "attempts": attempts,
        "last_error": item.error,
        "next_attempt_at": item.next_attempt_at,
        "updated_at": item.now,
    }
    return _merged(action, current, values)


def _merged(action: Action, current: Row | None, values: Row) -> Row:
    if current is None:
        return _new_row(action, **values)
    return {**current, **values}


def _new_row(action: Action, **values: Any) -> Row:
    """Return a record row for `action`'s key: every column, `values` over the defaults.

    Only a create makes the record syncd's; an update/disable without a row is a deep
    run adopting a user found on the target, which syncd must never delete.
    """
    row: Row = dict.fromkeys(_VALUE_COLUMNS)
    row.update(target=action.target, person_key=action.person_key, attempts=0)
    row.update(created_by_syncd=action.op is Op.CREATE, **values)
    return row


def _audit_row(item: Outcome) -> Row:
    action = item.action
    return {
        "run_id": item.run_id,
        "target": action.target,
        "person_key": action.person_key,
        "op": action.op.value,
        "outcome": item.outcome,
        "before_digest": action.before_digest,
        "after_digest": None if action.op is Op.DELETE else action.after_digest,
        "error": item.error,
        "at": item.now,
        "fields": change_fields(action),
    }


def change_fields(action: Action) -> str | None:
    """Return the JSON text of `action`'s field changes for its audit row (None: none).

    The plan already redacted every secret field (PIN, templates): only `<redacted>`
    is stored for them, never a value."""
    if not action.changes:
        return None
    return canonical_json({c.name: [c.before, c.after] for c in action.changes})
