"""Who holds a terminal lock: process identities and what a new session may do with a
remembered lock (`lockstate.LockState.judge`). Pure, but for /proc and one child process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syncd.owners import Owner, ProcessId, pid_alive, process_start
from syncd.targets.ef45.lockstate import LockState, Verdict

ME = Owner(ProcessId.current())
UID = "0f6c2a4e-8d1b-4c3a-9e7f-112233445566"


def held_by(process: ProcessId, uid: str | None = "u1", pending: bool = False) -> LockState:
    return LockState(held=uid, pending=pending, owner=Owner(process, run=3))


def test_this_process_is_alive_and_named_in_full() -> None:
    me = ProcessId.current()
    assert me.pid == os.getpid() and not me.gone()
    assert me.started is not None and me.started == process_start(os.getpid())
    assert ProcessId.from_json(me.as_json()) == me
    assert ProcessId.from_json({"pid": "1"}) is None


def test_an_ended_process_is_gone_and_one_on_another_host_never() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    here = ProcessId.current()
    assert ProcessId(here.host, child.pid, None, "t").gone()
    assert not ProcessId("elsewhere", child.pid, None, "t").gone()
    assert ProcessId(here.host, here.pid, "another-boot:1", "t").gone()  # pid reused
    assert not ProcessId(here.host, here.pid, None, "t").gone()  # start unknown: alive


def test_judge_releases_only_what_provably_ended() -> None:
    here = ME.process
    ended = ProcessId(here.host, here.pid, "another-boot:1", "t")
    live = ProcessId(here.host, os.getppid(), process_start(os.getppid()), "t")
    elsewhere = ProcessId("elsewhere", 1, None, "t")
    assert LockState().judge(ME, ()) is Verdict.NOTHING
    assert held_by(here).judge(ME, ()) is Verdict.STALE  # this process, no session on it
    assert held_by(here).judge(ME, {"u1"}) is Verdict.LIVE  # this process's open session
    assert held_by(ended).judge(ME, ()) is Verdict.STALE
    assert held_by(live).judge(ME, ()) is Verdict.LIVE
    assert held_by(live, uid=None, pending=True).judge(ME, ()) is Verdict.LIVE
    assert held_by(elsewhere).judge(ME, ()) is Verdict.FOREIGN
    assert LockState(held="u1").judge(ME, ()) is Verdict.FOREIGN  # memo of an older syncd
    assert held_by(ended, uid=None, pending=True).judge(ME, ()) is Verdict.NOTHING


def test_state_round_trip_and_transitions() -> None:
    asked = LockState().requesting(ME, now=100.0)
    assert asked.pending and asked.lost_at is None
    again = LockState.decode(asked.encode()).requesting(ME, now=200.0)
    assert again.lost_at == 200.0  # the first request went unanswered
    assert LockState.decode(again.refused().encode()).lost_at == 200.0
    taken = again.taken(UID)
    assert taken.held == UID and taken.lost_at is None and taken.owner == ME
    assert LockState.decode(taken.encode()) == taken
    assert taken.released().encode() is None
    assert LockState.decode("not json") == LockState()
    assert "pid" in taken.holder_text() and "(run " not in taken.holder_text()


def test_a_remembered_uid_that_is_not_a_lock_uid_is_discarded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = LockState(held="x\r\nX: 1", owner=Owner(ME.process, run=3)).encode()
    state = LockState.decode(hostile, source="EF-45 http://door")
    assert state.held is None and state.judge(ME, ()) is Verdict.NOTHING
    assert "EF-45 http://door: discarded a remembered lock uid" in caplog.text
    assert "\r\n" not in caplog.text  # shown escaped, never raw
    assert LockState.decode(LockState(held=UID).encode()).held == UID
