"""The run lock is the one lock discipline for terminal sessions, on SQLite and PostgreSQL:
re-entrant within a thread (the daemon's job around `Syncer.apply`), exclusive between
threads and processes, and taken by every daemon job."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from syncd.daemon.jobs import run_job
from syncd.errors import RunLockBusy
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger


def _taken_elsewhere(engine: sa.Engine) -> BaseException | None:
    """Try the run lock on another thread; return what it raised (None: it got it)."""
    caught: list[BaseException] = []

    def attempt() -> None:
        try:
            with run_lock(engine):
                pass
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return caught[0] if caught else None


def test_run_lock_is_reentrant_here_and_exclusive_elsewhere(ledger: Ledger) -> None:
    with run_lock(ledger.db), run_lock(ledger.db):  # nested: no self-deadlock
        assert isinstance(_taken_elsewhere(ledger.db), RunLockBusy)
    assert _taken_elsewhere(ledger.db) is None  # released once the outer block ends


class _Engine:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger


def test_every_daemon_job_holds_the_run_lock(ledger: Ledger) -> None:
    seen: list[BaseException | None] = []

    def job(engine: object) -> None:
        seen.append(_taken_elsewhere(ledger.db))

    run_job(job, _Engine(ledger), trigger="test", stop=threading.Event())  # type: ignore[arg-type]
    assert len(seen) == 1 and isinstance(seen[0], RunLockBusy)
    with run_lock(ledger.db):
        held = threading.Thread(
            target=lambda: seen.append(_run_job_error(job, ledger)),
        )
        held.start()
        held.join()
    assert isinstance(seen[-1], RunLockBusy) and len(seen) == 2  # the job never ran


def _run_job_error(job: object, ledger: Ledger) -> BaseException | None:
    try:
        run_job(job, _Engine(ledger), trigger="test", stop=threading.Event())  # type: ignore[arg-type]
    except BaseException as exc:
        return exc
    return None
