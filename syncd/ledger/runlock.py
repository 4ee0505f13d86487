"""The run lock: two syncd processes never work on one ledger's terminals at once.

It is also the one lock discipline for terminal sessions: every command that locks a
terminal (apply, backfill, events collect, device-clock, unlock; the daemon's jobs)
holds it first, so two syncd processes on one ledger never hold terminal sessions
concurrently, and a second one (an `events collect` by hand during the daemon's apply)
gets RunLockBusy instead of meeting the first one's terminal locks.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the whole
apply. SQLite: a file lock beside the database file. `plan` takes no lock.
`wait_s = 0` fails at once with RunLockBusy; a positive value waits that long first.
Re-entrant per thread: a block that already holds the lock of a ledger (the daemon's
job around `Syncer.apply`) takes it again at no cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from syncd.errors import LedgerError, RunLockBusy

ADVISORY_KEY = 0x5359_4E43  # "SYNC"; the second half of the lock id is the schema's hash
POLL_S = 0.2  # between tries of a busy PostgreSQL lock, while `wait_s` lasts


_held = threading.local()


@contextmanager
def run_lock(engine: sa.Engine, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the ledger's run lock for the block; raise RunLockBusy if another process (or
    thread) holds it. Already held by this thread for this ledger: nothing more is done."""
    key = engine.url.render_as_string(hide_password=True)
    holding: set[str] = _held.__dict__.setdefault("keys", set())
    if key in holding:
        yield
        return
    take = _advisory_lock if engine.dialect.name == "postgresql" else _file_lock
    with take(engine, wait_s):
        holding.add(key)
        try:
            yield
        finally:
            holding.discard(key)


@contextmanager
def _advisory_lock(engine: sa.Engine, wait_s: float) -> Iterator[None]:
    with engine.connect() as conn:
        # Scoped to the ledger's schema: two ledgers sharing one database never block
        # each other, while every syncd on the same ledger meets the same lock.
        try_lock = sa.text(
            "SELECT pg_try_advisory_lock(:key, hashtext(coalesce(current_schema(), '')))"
        )

        def take() -> None:
            taken = conn.execute(try_lock, {"key": ADVISORY_KEY}).scalar()
            conn.commit()
            if not taken:
                raise RunLockBusy("another syncd process holds the ledger's run lock (PostgreSQL)")

        retrying = Retrying(
            retry=retry_if_exception_type(RunLockBusy),
            stop=stop_after_delay(wait_s),
            wait=wait_fixed(POLL_S),
            reraise=True,
        )
        retrying(take)
        try:
            yield
        finally:
            _advisory_unlock(conn)


def _advisory_unlock(conn: sa.Connection) -> None:
    """Release the advisory lock; raise LedgerError if its connection was lost meanwhile
    (PostgreSQL then released the lock already: another process may have taken it
    while this one still worked, so the run must not pass for a clean one)."""
    unlock = sa.text("SELECT pg_advisory_unlock(:key, hashtext(coalesce(current_schema(), '')))")
    try:
        conn.execute(unlock, {"key": ADVISORY_KEY})
        conn.commit()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise LedgerError(
            "the ledger connection holding the run lock was lost during the run "
            f"({type(exc.orig).__name__}); what the ledger recorded stands: run again"
        ) from None


@contextmanager
def _file_lock(engine: sa.Engine, wait_s: float) -> Iterator[None]:
    from filelock import FileLock, Timeout  # only an applying run locks: not for a plan

    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock = FileLock(str(Path(database).with_suffix(Path(database).suffix + ".lock")))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise RunLockBusy(f"another syncd process holds the run lock ({lock.lock_file})") from None
    try:
        yield
    finally:
        lock.release()
