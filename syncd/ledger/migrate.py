"""Schema migrations: `upgrade` runs Alembic to head; `check_schema` refuses an old ledger.

The Alembic scripts live in the repository's `migrations/` (a wheel carries them as
`syncd/_data/migrations`); both places are looked up so an editable and a built install
behave the same.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from syncd.config import shipped_path
from syncd.errors import ConfigError, LedgerError, ledger_failing


def migrations_dir() -> Path:
    """Return the directory of the Alembic scripts; raise LedgerError if none is found."""
    try:
        return shipped_path("migrations", "env.py").parent
    except ConfigError as exc:
        raise LedgerError(str(exc)) from None


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def head_revision() -> str:
    """Return the newest revision the installed code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise LedgerError("no migration revisions found")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """Return the ledger's revision, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Bring the ledger to the head revision; return (revision before, revision after)."""
    before = current_revision(engine)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return before, head_revision()


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
