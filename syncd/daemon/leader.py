"""Active/standby: which of the daemons sharing a ledger runs the jobs.

PostgreSQL: a session-level advisory lock held on a dedicated connection, keyed by
(`LEADER_KEY`, hash of the ledger's schema): the two-key form never meets the run lock's
one-key lock, so an administrator's `syncd apply` never competes with leadership, and
two ledgers in two schemas of one database have a leader each. When the active daemon
dies its connection closes, PostgreSQL releases the lock, and a standby polling every
`standby_poll_s` takes over. SQLite: an exclusive file lock beside the database
(`ledger.db.leader.lock`); the kernel releases it when the process dies, so the same
holds on one host.

`Leadership.poll()` is called by the daemon's main loop: it tries to take the lock when
standby and checks it still holds it when active; it returns whether this daemon leads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from filelock import FileLock, Timeout
from sqlalchemy.pool import NullPool

from syncd.ledger.store import create_ledger_engine

log = logging.getLogger(__name__)

LEADER_KEY = 0x5359_4E44  # "SYND"
_KEYS = ":key, hashtext(coalesce(current_schema(), ''))"


class Leadership(Protocol):
    """Who leads: `poll` takes or checks the lock, `release` gives it up."""

    leading: bool

    def poll(self) -> bool:
        """Try to lead (standby) or check we still lead (active); return `leading`."""

    def release(self) -> None:
        """Give up leadership and close what holds it."""


class AlwaysLeader:
    """Leadership when there is nothing to share (an in-memory SQLite ledger)."""

    leading = True

    def poll(self) -> bool:
        """Return True."""
        return True

    def release(self) -> None:
        """Nothing to release."""


class PostgresLeadership:
    """The advisory lock `LEADER_KEY` on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.leading = False
        self._engine = sa.create_engine(url, poolclass=NullPool)
        self._conn: sa.Connection | None = None

    def poll(self) -> bool:
        """Try the lock or check the connection holding it; a lost connection steps down."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            if self.leading:
                self._conn.execute(sa.text("SELECT 1")).scalar()
            else:
                got = self._conn.execute(
                    sa.text(f"SELECT pg_try_advisory_lock({_KEYS})"), {"key": LEADER_KEY}
                ).scalar()
                self.leading = bool(got)
            self._conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            if self.leading:
                log.error("leadership lost: its connection failed (%s)", type(exc).__name__)
            self._drop()
        return self.leading

    def _drop(self) -> None:
        self.leading = False
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None

    def release(self) -> None:
        """Unlock (closing the connection would do the same) and close."""
        if self._conn is not None and self.leading:
            try:
                unlock = sa.text(f"SELECT pg_advisory_unlock({_KEYS})")
                self._conn.execute(unlock, {"key": LEADER_KEY})
                self._conn.commit()
            except sa.exc.SQLAlchemyError:
                pass
        self.leading = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()


class FileLeadership:
    """An exclusive file lock beside the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.leading = False
        self.path = path
        self._lock = FileLock(str(path), thread_local=False)

    def poll(self) -> bool:
        """Try the lock once if standby; the kernel keeps it for us while we live."""
        if not self.leading:
            try:
                self._lock.acquire(timeout=0)
                self.leading = True
            except Timeout:
                self.leading = False
        return self.leading

    def release(self) -> None:
        """Unlock."""
        if self.leading:
            self._lock.release()
        self.leading = False


def leadership_for(url: str) -> Leadership:
    """Return the leadership lock fitting the ledger at `url`."""
    engine = create_ledger_engine(url)
    try:
        dialect, database = engine.dialect.name, engine.url.database
    finally:
        engine.dispose()
    if dialect == "postgresql":
        return PostgresLeadership(url)
    if not database or database == ":memory:":
        return AlwaysLeader()
    return FileLeadership(Path(database).with_suffix(Path(database).suffix + ".leader.lock"))
