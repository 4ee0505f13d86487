"""Loading held records for a large plan, on SQLite and PostgreSQL: the light load
(`Ledger.load_held(with_records=False)`) is the full load without records and errors,
and `Ledger.load_records` fetches the records behind a plan's actions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from syncd.ledger import migrate
from syncd.ledger.schema import target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import HeldTable, canonical_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _row(target: str, key: str, **values: Any) -> dict[str, Any]:
    record = {"user_uuid": key, "access_allowed": True}
    row = {
        "target": target,
        "person_key": key,
        "remote_id": key,
        "digest": f"d-{key}",
        "record": canonical_json(record),
        "state": "ok",
        "created_by_syncd": True,
        "disabled_since": None,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": None,
        "updated_at": NOW,
    }
    return {**row, **values}


ROWS = [
    _row("door", "settled"),
    _row("door", "auth", remote_id="4711"),
    _row("door", "no_remote", remote_id=None),
    _row("door", "disabled", disabled_since=NOW),
    _row("door", "foreign", created_by_syncd=False),
    _row("door", "failed", state="failed", attempts=2, last_error="timeout", next_attempt_at=NOW),
    _row("door", "retried_ok", attempts=1),
    _row("door", "pending", state="pending", digest=None, record=None, remote_id=None),
    _row("door", "blocked", state="blocked"),
    _row("door", "no_record", record=None),
    _row("gate", "settled"),
    _row("gate", "auth", remote_id="4712"),
    _row("pending_only", "pending", state="pending", digest=None, record=None, remote_id=None),
]


def _ledger(url: str) -> Ledger:
    engine = create_ledger_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(target_records.insert(), ROWS)
    return Ledger(engine)


def test_light_load_is_the_full_load_without_records(ledger_url: str) -> None:
    ledger = _ledger(ledger_url)
    try:
        full = ledger.load_held()
        light = ledger.load_held(with_records=False)
        one = ledger.load_held("door", with_records=False)
    finally:
        ledger.close()

    stripped = {
        name: {k: dataclasses.replace(h, record=None, last_error=None) for k, h in held.items()}
        for name, held in full.items()
    }
    assert {name: dict(held) for name, held in light.items()} == stripped
    assert all(isinstance(held, HeldTable) for held in light.values())
    door = light["door"]
    assert isinstance(door, HeldTable)
    assert set(door.settled_digests) == {"settled", "auth", "no_record"}  # the rest: in full
    assert door["auth"].remote_id == "4711" and door["failed"].next_attempt_at == NOW
    assert door["disabled"].disabled_since == NOW and not door["foreign"].created_by_syncd
    assert list(one) == ["door"] and dict(one["door"]) == stripped["door"]


def test_load_records_fetches_only_records_held(ledger_url: str) -> None:
    ledger = _ledger(ledger_url)
    try:
        keys = [("door", "settled"), ("door", "auth"), ("door", "pending"), ("gate", "settled")]
        found = ledger.load_records([*keys, ("door", "no_record"), ("door", "nobody")])
    finally:
        ledger.close()

    assert set(found) == {("door", "settled"), ("door", "auth"), ("gate", "settled")}
    assert found[("door", "auth")] == {"user_uuid": "auth", "access_allowed": True}
    # one person's equal records on two targets are one shared (read-only) object
    assert found[("door", "settled")] is found[("gate", "settled")]
