"""Group commit of outcomes: one group gives exactly what the outcomes one by one give.

`Ledger.record_outcomes` writes a whole group with bulk statements; a later outcome for
the same record must still see what an earlier one in the group wrote (a create's
"pending" then its "applied", a disable then a delete). Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from syncd.ledger import migrate
from syncd.ledger.outcomes import Outcome
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.model import Action, Op

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _action(target: str, key: str, op: Op, *, active: bool = True, card: str = "1") -> Action:
    record = {"name": key, "card": card}
    return Action(target=target, person_key=key, op=op, record=record,
                  after_digest=f"d-{key}-{op.value}-{card}", active_after=active)  # fmt: skip


def _setup(target: str) -> list[Outcome]:
    """Records stored before the group: p7 and p8 exist and are ok."""
    return [
        Outcome(1, _action(target, "p7", Op.CREATE), "applied", T0, "r7"),
        Outcome(1, _action(target, "p8", Op.CREATE), "applied", T0, "r8"),
    ]


def _group(target: str) -> list[Outcome]:
    """One group touching most records more than once, in an order that matters."""
    t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    retry = T0 + timedelta(hours=1)
    a = lambda key, op, **kw: _action(target, key, op, **kw)  # noqa: E731
    return [
        Outcome(2, a("p1", Op.CREATE), "pending", t1),
        Outcome(2, a("p2", Op.CREATE), "pending", t1),
        Outcome(2, a("p1", Op.CREATE), "applied", t2, "r1"),
        Outcome(2, a("p2", Op.CREATE), "failed", t2, None, "timeout", retry),
        Outcome(2, a("p3", Op.CREATE), "applied", t1, "r3"),
        Outcome(2, a("p3", Op.DISABLE, active=False), "applied", t2),
        Outcome(2, a("p4", Op.UPDATE), "failed", t1, None, "refused", retry),
        Outcome(2, a("p4", Op.UPDATE), "blocked", t2, None, "cap"),
        Outcome(2, a("p5", Op.DELETE), "failed", t1, None, "gone"),
        Outcome(2, a("p6", Op.CREATE), "applied", t1, "r6"),
        Outcome(2, a("p6", Op.CREATE), "pending", t2),
        Outcome(2, a("p7", Op.UPDATE, card="2"), "applied", t1),
        Outcome(2, a("p7", Op.UPDATE, card="3"), "failed", t2, None, "busy", retry),
        Outcome(2, a("p8", Op.DELETE), "applied", t1),
        Outcome(2, a("p3", Op.DELETE, active=False), "applied", t2),
    ]


def _rows(ledger: Ledger, target: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    records = sa.text("SELECT * FROM target_records WHERE target = :t ORDER BY person_key")
    audit = sa.text(
        "SELECT run_id, person_key, op, outcome, before_digest, after_digest, error, at "
        "FROM changes WHERE target = :t ORDER BY id"
    )
    with ledger.db.connect() as conn:
        held = {
            r.person_key: {**r._asdict(), "target": None}
            for r in conn.execute(records, {"t": target})
        }
        changes = [tuple(r) for r in conn.execute(audit, {"t": target})]
    return held, changes


def test_a_group_is_written_as_its_outcomes_one_by_one(ledger_url: str) -> None:
    engine = create_ledger_engine(ledger_url)
    migrate.upgrade(engine)
    ledger = Ledger(engine)
    try:
        for _ in range(2):  # runs 1 and 2, which the audit rows refer to
            ledger.start_run(kind="sync", trigger="test", dry_run=False, now=T0)
        for target in ("grouped", "single"):
            ledger.record_outcomes(_setup(target))
        ledger.record_outcomes(_group("grouped"))
        for outcome in _group("single"):
            ledger.record_outcomes([outcome])
        grouped, single = _rows(ledger, "grouped"), _rows(ledger, "single")
    finally:
        ledger.close()
    assert grouped == single
    held, changes = grouped
    assert sorted(held) == ["p1", "p2", "p4", "p6", "p7"]  # p3 and p8 deleted, p5 orphan
    assert (held["p1"]["state"], held["p1"]["remote_id"]) == ("ok", "r1")
    assert (held["p2"]["state"], held["p2"]["attempts"], held["p2"]["digest"]) == (
        "failed",
        1,
        None,
    )
    assert held["p2"]["created_by_syncd"] and not held["p4"]["created_by_syncd"]
    assert (held["p4"]["state"], held["p4"]["attempts"]) == ("blocked", 1)
    assert (held["p6"]["state"], held["p6"]["remote_id"]) == ("ok", "r6")  # pending after ok
    p7 = held["p7"]
    assert (p7["state"], p7["digest"], p7["remote_id"]) == ("failed", "d-p7-update-2", "r7")
    in_group = [row for row in changes if row[0] == 2]
    assert len(in_group) == len(_group("x")) - 3  # every outcome but the three pending
