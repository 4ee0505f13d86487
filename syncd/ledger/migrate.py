"""Schema migrations: `upgrade` runs Alembic to head; `check_schema` refuses an old ledger.

The Alembic scripts live in the repository's `migrations/` (a wheel carries them as
`syncd/_data/migrations`); both places are looked up so an editable and a built install
behave the same.

Alembic is imported only to migrate (`upgrade`) or to read the scripts (`script_head`):
every command checks the schema, and that check is a plain query of `alembic_version`
compared with `HEAD_REVISION`, so a `syncd plan` does not pay for importing Alembic and
its dialect modules. tests/integration/test_migrations.py checks that `HEAD_REVISION`
is the newest script's revision: a new migration must update it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from syncd.config import shipped_path
from syncd.errors import ConfigError, LedgerError, ledger_failing

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

HEAD_REVISION = "0005"
"""The revision of the newest script in migrations/versions (the schema this code needs)."""

VERSION_TABLE = "alembic_version"


def migrations_dir() -> Path:
    """Return the directory of the Alembic scripts; raise LedgerError if none is found."""
    try:
        return shipped_path("migrations", "env.py").parent
    except ConfigError as exc:
        raise LedgerError(str(exc)) from None


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str:
    """Return the newest revision the installed code knows."""
    return HEAD_REVISION


def script_head() -> str | None:
    """Return the head revision of the Alembic scripts themselves (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    """Return the ledger's revision, or None for an empty database (no version table, or
    an empty one). Raise LedgerError if the table holds more than one revision: the
    migrations have a single line of history."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        table = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))
        found = conn.execute(sa.select(table.c.version_num)).scalars().all()
    if len(found) > 1:
        raise LedgerError(
            f"ledger schema has several revisions {sorted(found)}: not a syncd ledger"
        )
    return found[0] if found else None


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring the ledger to the head revision; return (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    after = current_revision(engine)
    if after is None:  # Alembic stamps the version table; an empty one is a broken ledger
        raise LedgerError("ledger upgrade left no revision")
    return before, after


def check_schema(engine: sa.Engine) -> None:
    """Return if the ledger is at head; raise LedgerError saying what to run if not."""
    try:
        current = current_revision(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise ledger_failing(exc) from None
    head = head_revision()
    if current != head:
        shown = current or "empty"
        raise LedgerError(
            f"ledger schema is at {shown}, this syncd needs {head}: run `syncd db upgrade`"
        )
