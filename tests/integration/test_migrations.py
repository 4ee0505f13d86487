"""Alembic revisions on SQLite and PostgreSQL: 0002 → 0003 adds `run_problems`, 0003 →
0004 adds `changes.fields` (the audited values), 0004 → 0005 the people's windows and the
partial indexes of `target_records`.

A ledger at 0002 with a run in it upgrades to head without losing the run; the new table
takes a problem for that run; the daemon's schema check passes; a downgrade to 0002 drops
the table again and leaves the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from syncd.errors import LedgerError
from syncd.ledger import migrate, queries
from syncd.ledger.schema import people
from syncd.ledger.store import create_ledger_engine


@pytest.fixture
def db(ledger_url: str) -> Iterator[sa.Engine]:
    engine = create_ledger_engine(ledger_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _move(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrate.migrations_dir()))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_upgrade_from_0002_to_0003_adds_run_problems(db: sa.Engine) -> None:
    _move(db, "0002")
    assert migrate.current_revision(db) == "0002"
    assert "run_problems" not in sa.inspect(db).get_table_names()
    with pytest.raises(LedgerError, match="syncd db upgrade"):
        migrate.check_schema(db)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (kind, trigger, dry_run, started_at, outcome, counts) "
                "VALUES ('apply', 'cli', false, :at, 'ok', '{}')"
            ),
            {"at": datetime(2026, 11, 1, tzinfo=UTC)},
        )
    before, after = migrate.upgrade(db)
    assert (before, after) == ("0002", migrate.head_revision())
    migrate.check_schema(db)
    inspector = sa.inspect(db)
    columns = {c["name"] for c in inspector.get_columns("run_problems")}
    assert columns == {"id", "run_id", "source", "where", "field", "message", "decision"}
    (foreign,) = inspector.get_foreign_keys("run_problems")
    assert foreign["referred_table"] == "runs" and foreign["constrained_columns"] == ["run_id"]
    with db.begin() as conn:
        (run_id,) = conn.execute(sa.text("SELECT id FROM runs")).one()
        conn.execute(
            sa.text(
                'INSERT INTO run_problems (run_id, source, "where", field, message, decision) '
                "VALUES (:run, 'hr', 'people.csv:3', 'key', 'missing', 'skipped')"
            ),
            {"run": run_id},
        )
    _move(db, "0002", down=True)
    assert "run_problems" not in sa.inspect(db).get_table_names()
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 1


def test_upgrade_to_0004_keeps_audit_rows_without_values(db: sa.Engine) -> None:
    _move(db, "0003")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO runs (kind, trigger, dry_run, started_at, outcome, counts) "
                "VALUES ('apply', 'cli', false, :at, 'ok', '{}')"
            ),
            {"at": at},
        )
        (run_id,) = conn.execute(sa.text("SELECT id FROM runs")).one()
        conn.execute(
            sa.text(
                "INSERT INTO changes (run_id, target, person_key, op, outcome, before_digest,"
                " after_digest, at) VALUES (:run, 'lobby', 'P1', 'update', 'applied', 'a', 'b',"
                " :at)"
            ),
            {"run": run_id, "at": at},
        )
    migrate.upgrade(db)
    migrate.check_schema(db)
    (row,) = queries.audit(db, "P1")
    assert row.fields is None and row.before_digest == "a"  # kept; its values never were
    assert queries.person_known(db, "P1") and not queries.person_known(db, "P2")
    _move(db, "0003", down=True)
    assert "fields" not in {c["name"] for c in sa.inspect(db).get_columns("changes")}


def test_head_revision_constant_is_the_newest_script() -> None:
    # The schema check compares with the constant so that it need not import Alembic.
    assert migrate.head_revision() == migrate.script_head() == migrate.HEAD_REVISION


def test_revision_read_without_alembic_matches_alembic(db: sa.Engine) -> None:
    from alembic.runtime.migration import MigrationContext

    assert migrate.current_revision(db) is None  # empty database: no version table
    with pytest.raises(LedgerError, match="is at empty"):
        migrate.check_schema(db)
    _move(db, "0003")
    with db.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0003"
    assert migrate.current_revision(db) == "0003"
    assert migrate.upgrade(db) == ("0003", migrate.HEAD_REVISION)
    migrate.check_schema(db)


def test_upgrade_to_0005_copies_every_window_and_indexes_records(db: sa.Engine) -> None:
    """0005 fills `people.valid_from/valid_until` from each stored person's JSON (in UTC),
    so that a plan after a delta read misses no boundary of a person stored before it;
    and adds the partial indexes its queries use. A downgrade drops them again."""
    _move(db, "0004")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    stored = {
        "P1": {"key": "P1", "valid_from": "2027-01-04T00:00:00+01:00", "valid_until": None},
        "P2": {"key": "P2", "valid_from": None, "valid_until": "2026-12-31T23:59:59+01:00"},
        "P3": {"key": "P3", "valid_from": None, "valid_until": None, "pin": {"sealed": "x"}},
    }
    with db.begin() as conn:
        for key, data in stored.items():
            conn.execute(
                sa.text(
                    "INSERT INTO people (key, source, digest, data, first_seen, last_seen) "
                    "VALUES (:key, 'hr', 'd', :data, :at, :at)"
                ),
                {"key": key, "data": json.dumps(data), "at": at},
            )
    migrate.upgrade(db)
    migrate.check_schema(db)
    with db.connect() as conn:
        windows = {
            row.key: (row.valid_from, row.valid_until)
            for row in conn.execute(
                sa.select(people.c.key, people.c.valid_from, people.c.valid_until)
            )
        }
    assert windows == {
        "P1": (datetime(2027, 1, 3, 23, 0, tzinfo=UTC), None),
        "P2": (None, datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC)),
        "P3": (None, None),
    }
    indexes = {i["name"] for i in sa.inspect(db).get_indexes("target_records")}
    assert {"ix_target_records_settled", "ix_target_records_unsettled"} <= indexes
    _move(db, "0004", down=True)
    assert "valid_from" not in {c["name"] for c in sa.inspect(db).get_columns("people")}
    assert not {"ix_target_records_settled"} & {
        i["name"] for i in sa.inspect(db).get_indexes("target_records")
    }
