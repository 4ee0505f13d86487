"""The run lock: two applies (the daemon and an administrator) never overlap on one ledger.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the whole
apply. SQLite: a file lock beside the database file. `plan` takes no lock.
`wait_s = 0` fails at once with RunLockBusy; a positive value waits that long first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock, Timeout

from syncd.errors import RunLockBusy

ADVISORY_KEY = 0x5359_4E43  # "SYNC"; the second half of the lock id is the schema's hash


@contextmanager
def run_lock(engine: sa.Engine, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the ledger's run lock for the block; raise RunLockBusy if another apply holds it."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, wait_s):
            yield
    else:
        with _file_lock(engine, wait_s):
            yield


@contextmanager
def _advisory_lock(engine: sa.Engine, wait_s: float) -> Iterator[None]:
    with engine.connect() as conn:
        deadline = time.monotonic() + wait_s
        # Scoped to the ledger's schema: two ledgers sharing one database never block
        # each other, while every syncd on the same ledger meets the same lock.
        try_lock = sa.text(
            "SELECT pg_try_advisory_lock(:key, hashtext(coalesce(current_schema(), '')))"
        )
        while not conn.execute(try_lock, {"key": ADVISORY_KEY}).scalar():
            conn.commit()
            if time.monotonic() >= deadline:
                raise RunLockBusy("another syncd apply holds the ledger's run lock (PostgreSQL)")
            time.sleep(0.2)
        conn.commit()
        try:
            yield
        finally:
            unlock = sa.text(
                "SELECT pg_advisory_unlock(:key, hashtext(coalesce(current_schema(), '')))"
            )
            conn.execute(unlock, {"key": ADVISORY_KEY})
            conn.commit()


@contextmanager
def _file_lock(engine: sa.Engine, wait_s: float) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock = FileLock(str(Path(database).with_suffix(Path(database).suffix + ".lock")))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise RunLockBusy(f"another syncd apply holds the run lock ({lock.lock_file})") from None
    try:
        yield
    finally:
        lock.release()
