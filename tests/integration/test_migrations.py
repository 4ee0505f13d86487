"""Alembic revisions on SQLite and PostgreSQL: 0002 → 0003 adds `run_problems`, 0003 →
0004 adds `changes.fields` (the audited values).

A ledger at 0002 with a run in it upgrades to head without losing the run; the new table
takes a problem for that run; the daemon's schema check passes; a downgrade to 0002 drops
the table again and leaves the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from syncd.errors import LedgerError
from syncd.ledger import migrate, queries
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
