"""EF-45 lock etiquette over real HTTP, the lock memo in the ledger (SQLite and PostgreSQL).

syncd never takes a lock held by anyone else without `steal_lock`; after an unanswered
lock request it waits for the lock to come free, then LockBusy naming `syncd unlock`;
a lock remembered in the memo is released only when its syncd process provably ended;
a lost lock is recognised from the configured statuses alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.store import Ledger
from syncd.owners import Owner, ProcessId, process_start
from syncd.targets.ef45.client import Ef45Client, Ef45Rejected, Ef45Unavailable, LockBusy
from syncd.targets.ef45.lockstate import LockPolicy, LockState
from tests.fixtures.daemon import wait_for

QUICK = LockPolicy(wait_s=0.3, poll_s=0.02)


def client(
    server: EmulatorServer,
    memo: LedgerLockMemo | None,
    policy: LockPolicy = QUICK,
    **options: object,
) -> Ef45Client:
    return Ef45Client(
        base_url=server.url,
        timeout_s=2.0,
        lock_memo=memo,
        lock_policy=policy,
        **options,  # type: ignore[arg-type]
    )


def remember(memo: LedgerLockMemo, uid: str, process: ProcessId) -> None:
    """Leave the memo as a session of `process` holding `uid` leaves it."""
    memo.remember(LockState(held=uid, owner=Owner(process, run=7)).encode())


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host, playing a second syncd; ends when its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield child
    if child.poll() is None:
        child.kill()
        child.wait()


def identity_of(child: subprocess.Popen[bytes]) -> ProcessId:
    me = ProcessId.current()
    return ProcessId(me.host, child.pid, process_start(child.pid), "second-syncd")


class Watching(httpx.AsyncBaseTransport):
    """A transport to the emulator that calls `on_busy` when a POST /lock is refused."""

    def __init__(self, on_busy: Callable[[], None]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.on_busy = on_busy
        self.refused = 0
        self.steals = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.steals += request.method == "PUT" and request.url.path.endswith("/lock")
        response = await self.inner.handle_async_request(request)
        lock_request = request.method == "POST" and request.url.path.endswith("/lock")
        if lock_request and 400 <= response.status_code < 500:
            self.refused += 1
            self.on_busy()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- an unanswered lock request ---------------------------------------------------------


async def test_lock_granted_after_its_request_timed_out_is_never_stolen(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_faults: Faults, ledger: Ledger
) -> None:
    memo = LedgerLockMemo(ledger, "door")
    ef45_faults.stall_ms = 1500  # the device acts on POST /lock after the client gave up
    with pytest.raises(Ef45Unavailable):
        async with Ef45Client(base_url=ef45_server.url, timeout_s=0.2, lock_memo=memo):
            pass
    ef45_faults.stall_ms = 0
    ghost = wait_for(lambda: ef45_state.lock_uid, 10, "the lost request's lock")
    assert LockState.decode(memo.recall()).pending
    with pytest.raises(LockBusy) as busy:
        async with client(ef45_server, memo):
            pass
    assert ef45_state.lock_uid == ghost, "a lock syncd cannot tell from an operator's was taken"
    assert "syncd unlock door" in str(busy.value) and "unverified" in str(busy.value)
    assert LockState.decode(memo.recall()).lost_at is not None  # the next run waits again
    async with client(ef45_server, memo, steal_lock=True):
        assert ef45_state.lock_uid not in (None, ghost)  # stealing stays the admin's choice
    assert ef45_state.lock_uid is None and memo.recall() is None


async def test_waits_for_the_lock_and_takes_it_once_free(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ledger: Ledger
) -> None:
    memo = LedgerLockMemo(ledger, "door")
    memo.remember(LockState(pending=True, owner=memo.owner()).encode())  # request unanswered
    ghost = ef45_state.acquire_lock()  # ... and granted to nobody
    watching = Watching(lambda: ef45_state.release_lock(ghost))  # frees at the 1st refusal
    patient = LockPolicy(wait_s=60, poll_s=0.01)
    try:
        async with client(ef45_server, memo, patient, transport=watching):
            assert ef45_state.lock_uid not in (None, ghost)
            held = LockState.decode(memo.recall())
            assert held.held == ef45_state.lock_uid and held.lost_at is None
    finally:
        await watching.aclose()
    assert watching.refused == 1 and watching.steals == 0
    assert ef45_state.lock_uid is None and memo.recall() is None


async def test_busy_lock_without_a_lost_request_is_refused_at_once(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ledger: Ledger
) -> None:
    memo = LedgerLockMemo(ledger, "door")
    ef45_state.lock_held_by_other = True  # the vendor software
    watching = Watching(lambda: None)
    try:
        with pytest.raises(LockBusy, match="held by another client"):
            async with client(ef45_server, memo, LockPolicy(wait_s=60), transport=watching):
                pass
    finally:
        await watching.aclose()
    assert watching.refused == 1 and watching.steals == 0 and memo.recall() is None


# -- two processes ----------------------------------------------------------------------


async def test_a_live_process_keeps_its_lock_and_a_dead_ones_is_released(
    ef45_server: EmulatorServer,
    ef45_state: Ef45State,
    ledger: Ledger,
    other_process: subprocess.Popen[bytes],
) -> None:
    first = identity_of(other_process)
    uid = ef45_state.acquire_lock()  # the first process's apply holds the lock
    remember(LedgerLockMemo(ledger, "door", process=first), uid, first)
    second = LedgerLockMemo(ledger, "door")  # this process: `events collect` by hand
    with pytest.raises(LockBusy, match=rf"another running syncd process .*pid {first.pid}"):
        async with client(ef45_server, second):
            pass
    assert ef45_state.lock_uid == uid
    assert LockState.decode(second.recall()).held == uid  # the memo still names the first
    other_process.kill()
    other_process.wait()
    async with client(ef45_server, second):
        assert ef45_state.lock_uid not in (None, uid)  # the dead one's lock was released
    assert ef45_state.lock_uid is None and second.recall() is None


async def test_a_pid_reused_by_another_process_is_stale(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ledger: Ledger
) -> None:
    me = ProcessId.current()
    before_reboot = ProcessId(me.host, me.pid, "another-boot:1", "an-earlier-syncd")
    uid = ef45_state.acquire_lock()
    memo = LedgerLockMemo(ledger, "door")
    remember(memo, uid, before_reboot)
    async with client(ef45_server, memo):
        assert ef45_state.lock_uid not in (None, uid)
    assert ef45_state.lock_uid is None


async def test_a_lock_of_another_host_is_left_alone_unless_stealing(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ledger: Ledger
) -> None:
    elsewhere = ProcessId("standby-host", 1, None, "t")
    uid = ef45_state.acquire_lock()
    memo = LedgerLockMemo(ledger, "door")
    remember(memo, uid, elsewhere)
    with pytest.raises(LockBusy):
        async with client(ef45_server, memo):
            pass
    assert ef45_state.lock_uid == uid
    kept = LockState.decode(memo.recall())
    assert kept.held == uid and kept.owner is not None and kept.owner.process == elsewhere
    async with client(ef45_server, memo, steal_lock=True):
        assert ef45_state.lock_uid not in (None, uid)
    assert ef45_state.lock_uid is None


async def test_two_sessions_of_one_process_never_release_each_other(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ledger: Ledger
) -> None:
    memo = LedgerLockMemo(ledger, "door")
    async with client(ef45_server, memo):
        uid = ef45_state.lock_uid
        with pytest.raises(LockBusy, match="another running syncd process"):
            async with client(ef45_server, memo):
                pass
        assert ef45_state.lock_uid == uid
    assert ef45_state.lock_uid is None


# -- a lost lock ------------------------------------------------------------------------


async def test_lost_lock_statuses_are_configurable(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    ef45_state.drop_lock_after = 1  # the emulator then answers 403 without the lock
    async with client(ef45_server, None, LockPolicy(lost_statuses=frozenset({403}))) as ef45:
        await ef45.door_status()
        await ef45.door_status()  # 403: retaken, retried
    with pytest.raises(Ef45Rejected) as refused:
        async with client(ef45_server, None, LockPolicy(lost_statuses=frozenset({409}))) as ef45:
            await ef45.door_status()
            await ef45.door_status()  # 403 is not "lost" here: an ordinary refusal
    assert refused.value.status == 403
