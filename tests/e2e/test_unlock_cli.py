"""`syncd unlock TARGET` and the run lock of every terminal command, as real processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger
from syncd.owners import Owner, ProcessId
from syncd.targets.ef45.lockstate import LockState
from tests.fixtures.daemon import SYNCD, DaemonWorld, make_world


@pytest.fixture
def world(tmp_path: Path, ledger_url: str) -> Iterator[DaemonWorld]:
    yield from make_world(tmp_path, ledger_url, people=3)


def _memo(world: DaemonWorld) -> Iterator[LedgerLockMemo]:
    ledger = Ledger.open(world.ledger_url)
    try:
        yield LedgerLockMemo(ledger, "lobby")
    finally:
        ledger.close()


def _unlock_without_tty(world: DaemonWorld) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNCD_CONFIG": str(world.config_path), "COLUMNS": "200"}
    return subprocess.run(
        [*SYNCD, "unlock", "lobby"],
        cwd=world.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unlock_steals_and_releases_a_lock_nobody_remembers(world: DaemonWorld) -> None:
    terminal = world.terminals["lobby"]
    operator = terminal.acquire_lock()  # the vendor software, or a lost request of syncd's
    refused = _unlock_without_tty(world)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refusing to unlock without --yes" in refused.stdout
    assert terminal.lock_uid == operator
    done = world.cli("unlock", "lobby", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nobody syncd knows of" in done.stdout and "PUT /lock" in done.stdout
    assert terminal.lock_uid is None


def test_unlock_releases_the_remembered_lock_by_its_uid(world: DaemonWorld) -> None:
    terminal = world.terminals["lobby"]
    uid = terminal.acquire_lock()
    elsewhere = Owner(ProcessId("standby-host", 4242, None, "t"), run=12)
    for memo in _memo(world):
        memo.remember(LockState(held=uid, owner=elsewhere).encode())
    done = world.cli("unlock", "lobby", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "syncd pid 4242 on host standby-host (run 12)" in done.stdout
    assert "DELETE /lock/{uid}" in done.stdout and "PUT" not in done.stdout
    assert terminal.lock_uid is None
    for memo in _memo(world):
        assert memo.recall() is None


def test_unlock_of_an_unknown_target_is_a_usage_error(world: DaemonWorld) -> None:
    done = world.cli("unlock", "nosuch", "--yes")
    assert done.returncode == 2 and "unknown target" in done.stderr


@pytest.mark.parametrize(
    "command", [("events", "collect"), ("device-clock",), ("unlock", "lobby", "--yes")]
)
def test_terminal_commands_wait_for_the_run_lock(
    world: DaemonWorld, command: tuple[str, ...]
) -> None:
    terminal = world.terminals["lobby"]
    uid = terminal.acquire_lock()
    engine = sa.create_engine(world.ledger_url)
    try:
        with run_lock(engine):  # a daemon apply, say
            busy = world.cli(*command)
        assert busy.returncode == 5 and "run lock" in busy.stderr, busy.stdout + busy.stderr
        assert terminal.lock_uid == uid  # never reached the terminal
    finally:
        engine.dispose()
