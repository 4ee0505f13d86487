"""Purging people and their templates is a ledger operation with an audit trail, on
SQLite and PostgreSQL: who (the run), when, why, and digests only, never the bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from syncd.ledger import migrate
from syncd.ledger.crypto import TemplateKey, generate_key_text
from syncd.ledger.purge import LEDGER, PURGE_OP, Purged, purge_gone, purge_people
from syncd.ledger.schema import changes, enrollments, people, runs, target_records
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.ledger.templates import TemplateVault, TemplateWrite

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
IRIS = b"left-iris-template-bytes-of-the-leaver"
FACE = b'{"sub_id":0,"data":"face-template-bytes"}'


def _ledger(url: str) -> tuple[Ledger, TemplateVault]:
    engine = create_ledger_engine(url)
    migrate.upgrade(engine)
    return Ledger(engine), TemplateVault.open(engine, TemplateKey.from_text(generate_key_text()))


def _person(ledger: Ledger, key: str, gone_since: datetime | None) -> None:
    with ledger.db.begin() as conn:
        conn.execute(people.insert().values(
            key=key, source="hr", digest=f"pd-{key}", data="{}", first_seen=NOW,
            last_seen=NOW, gone_since=gone_since,
        ))  # fmt: skip


def _enroll(vault: TemplateVault, run_id: int, key: str, modality: str, data: bytes) -> str:
    digest = vault.digest(data)
    write = TemplateWrite(key, modality, data, digest, 8976, "door-1", NOW, None)
    vault.write(run_id, [write], [], NOW)
    return digest


def _purge_rows(ledger: Ledger) -> list[sa.Row[tuple[object, ...]]]:
    query = sa.select(changes, runs.c.kind, runs.c.trigger).join(runs)
    query = query.where(changes.c.op == PURGE_OP).order_by(changes.c.id)
    with ledger.db.connect() as conn:
        return list(conn.execute(query))


def test_retention_purge_is_audited_with_run_reason_and_digests(ledger_url: str) -> None:
    ledger, vault = _ledger(ledger_url)
    backfill = ledger.start_run(kind="backfill", trigger="cli", dry_run=False, now=NOW)
    for key, gone in (("leaver", NOW - timedelta(days=40)), ("held", NOW - timedelta(days=40)),
                      ("recent", NOW - timedelta(days=2)), ("present", None)):  # fmt: skip
        _person(ledger, key, gone)
        _enroll(vault, backfill, key, "left_iris", IRIS + key.encode())
    face = _enroll(vault, backfill, "leaver", "face:0", FACE)
    with ledger.db.begin() as conn:
        conn.execute(target_records.insert().values(
            target="door-1", person_key="held", state="ok", created_by_syncd=True,
            attempts=0, updated_at=NOW,
        ))  # fmt: skip
    apply = ledger.start_run(kind="apply", trigger="daemon", dry_run=False, now=NOW)

    purged = purge_gone(ledger.db, delete_after=timedelta(days=30), now=NOW, run_id=apply)

    assert purged == Purged(people=1, templates=2)
    with ledger.db.connect() as conn:
        left = set(conn.execute(sa.select(enrollments.c.person_key).distinct()).scalars())
        keys = set(conn.execute(sa.select(people.c.key)).scalars())
    assert left == keys == {"held", "recent", "present"}
    rows = _purge_rows(ledger)
    assert {r.person_key for r in rows} == {"leaver"} and len(rows) == 3
    assert all(r.run_id == apply and r.kind == "apply" and r.trigger == "daemon" for r in rows)
    assert all(r.target == LEDGER and r.outcome == "applied" and r.at == NOW for r in rows)
    assert all(r.after_digest is None and "retention" in (r.error or "") for r in rows)
    digests = {r.before_digest for r in rows}
    assert digests == {vault.digest(IRIS + b"leaver"), face, "pd-leaver"}
    assert any("face:0 from door-1" in (r.error or "") for r in rows)
    for row in rows:  # never the template bytes, in any column
        assert all(b"template-bytes" not in str(value).encode() for value in row)


def test_purge_people_is_one_transaction_with_its_audit(ledger_url: str) -> None:
    ledger, vault = _ledger(ledger_url)
    run_id = ledger.start_run(kind="apply", trigger="cli", dry_run=False, now=NOW)
    _person(ledger, "p1", NOW)
    _enroll(vault, run_id, "p1", "left_iris", IRIS)
    try:
        with ledger.db.begin() as conn:
            purge_people(conn, ["p1", "unknown"], run_id=run_id, reason="admin asked", now=NOW)
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    assert _purge_rows(ledger) == []  # rolled back together: nothing deleted, nothing audited
    with ledger.db.begin() as conn:
        done = purge_people(conn, ["p1", "unknown"], run_id=run_id, reason="admin asked", now=NOW)
    assert done == Purged(people=1, templates=1)
    assert [r.error for r in _purge_rows(ledger)] == ["admin asked; left_iris from door-1",
                                                      "admin asked"]  # fmt: skip
