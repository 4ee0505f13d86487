"""`syncd run` as a real process against emulated EF-45 terminals over loopback.

Covers: HR changes reach the terminal within two intervals and /metrics counts them;
SIGTERM during a slow apply stops at once (the request in flight cancelled) with the
terminal unlocked and the ledger agreeing with it; SIGHUP with a broken config is
refused and the old one kept; sd_notify READY/WATCHDOG/STOPPING; `syncd trigger`; two
daemons on PostgreSQL with one active and a takeover after kill -9.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.emulators.faults import Faults
from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv
from syncd.ledger.schema import runs, target_records
from syncd.targets.ef45.target import card_hex
from tests.fixtures.daemon import DaemonProcess, DaemonWorld, make_world, wait_for

INTERVAL = 1.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DaemonWorld]:
    yield from make_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", people=20)


@pytest.fixture
def daemon(world: DaemonWorld) -> Iterator[DaemonProcess]:
    process = DaemonProcess(world.config_path)
    try:
        yield process
    finally:
        process.kill()


def _terminal_matches_hr(world: DaemonWorld) -> bool:
    state = world.terminals["lobby"]
    with state.mutex:
        subjects = dict(state.subjects)
        info = dict(state.user_info)
    rows = {r["employee_id"]: r for r in read_people_csv(world.csv_path)}
    if set(subjects) != set(rows):
        return False
    return all(
        subjects[k]["last_name"] == r["last_name"]
        and subjects[k]["access_allowed"] is (r["status"] == "active")
        and info[k]["card"] == card_hex(int(r["badge_number"]))
        for k, r in rows.items()
    )


def test_hr_change_reaches_terminal_and_metrics(world: DaemonWorld, daemon: DaemonProcess) -> None:
    wait_for(lambda: _terminal_matches_hr(world), 20, "first reconcile")
    assert daemon.get("/healthz").status_code == 200
    daemon.wait_log(r'msg="job done" job=reconcile .*outcome=ok')
    apply_demo_changes(world.csv_path)
    changed = time.monotonic()
    wait_for(lambda: _terminal_matches_hr(world), 10, "HR change on the terminal")
    # Two intervals, plus slack for one job's own run time in a loaded CI.
    assert time.monotonic() - changed < 2 * INTERVAL + 2.0
    # The session unlocks right after its last action: released within a moment.
    wait_for(lambda: world.terminals["lobby"].lock_uid is None, 5, "terminal unlocked")
    wait_for(
        lambda: daemon.metric("syncd_actions_total", op="update", outcome="applied") >= 2,
        5,
        "updates counted in /metrics",
    )
    assert daemon.metric("syncd_actions_total", op="create", outcome="applied") == 21
    assert daemon.metric("syncd_actions_total", op="disable", outcome="applied") == 1
    assert daemon.metric("syncd_runs_total", kind="reconcile", outcome="ok") >= 2
    assert daemon.metric("syncd_leader") == 1
    assert "syncd_job_duration_seconds_bucket" in daemon.get("/metrics").text


def test_trigger_runs_a_job_now(world: DaemonWorld, daemon: DaemonProcess) -> None:
    daemon.wait_log(r"active: this daemon runs the jobs")
    done = world.cli("trigger", "reconcile")
    assert done.returncode == 0, done.stderr
    assert "queued" in done.stdout
    daemon.wait_log(r"job=reconcile .*trigger=manual")
    unknown = world.cli("trigger", "nosuch")
    assert unknown.returncode != 0 and "unknown job" in unknown.stderr


def test_admin_apply_fails_clearly_while_daemon_applies(world: DaemonWorld) -> None:
    """`plan` works at any time; `apply` without --wait fails on a held run lock."""
    from filelock import FileLock

    held = FileLock(str(world.workdir / "ledger.db.lock"))
    with held:
        plan = world.cli("plan")
        assert plan.returncode == 0, plan.stderr
        apply = world.cli("apply", "--yes")
        assert apply.returncode == 5 and "run lock" in apply.stderr


@pytest.mark.slow
def test_sigterm_during_apply_stops_cleanly(tmp_path: Path) -> None:
    faults = Faults(latency_ms=200)
    for world in make_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", 30, faults):
        state = world.terminals["lobby"]
        daemon = DaemonProcess(world.config_path)
        try:
            wait_for(lambda: len(state.subjects) >= 3, 20, "the apply under way")
            sent = time.monotonic()
            daemon.signal(signal.SIGTERM)
            code = daemon.proc.wait(timeout=15)
            took = time.monotonic() - sent
        finally:
            daemon.kill()
        assert code == 0, daemon.log()[-2000:]
        assert took < 10.0  # stop_timeout_s of the test config
        assert state.lock_uid is None
        assert len(state.subjects) < 30  # it stopped between actions
        _assert_ledger_agrees(world)
        assert daemon.matching(r"outcome=interrupted")


def _assert_ledger_agrees(world: DaemonWorld) -> None:
    """The ledger's "ok" records are what the terminal holds; the create that was in
    flight when the stop cancelled it may have reached the terminal, and its record is
    then "pending" (written ahead), so the next run finds it and converges."""
    state = world.terminals["lobby"]
    engine = sa.create_engine(world.ledger_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(target_records).where(target_records.c.state.in_(("ok", "pending")))
            ).all()
            outcomes = {r.outcome for r in conn.execute(sa.select(runs.c.outcome))}
    finally:
        engine.dispose()
    ok = {r.person_key for r in rows if r.state == "ok"}
    assert ok and ok <= set(state.subjects) <= {r.person_key for r in rows}
    assert len(set(state.subjects) - ok) <= 1
    for row in rows:
        if row.state != "ok":
            continue
        record = json.loads(row.record)
        subject = state.subjects[row.person_key]
        info = state.user_info[row.person_key]
        for key in ("first_name", "last_name", "access_allowed", "match_until"):
            assert subject[key] == record[key], (row.person_key, key)
        assert info["card"] == record["card"]
    assert "interrupted" in outcomes and "running" not in outcomes


def test_sighup_with_broken_config_keeps_old_one(world: DaemonWorld, daemon: DaemonProcess) -> None:
    daemon.wait_log(r'msg="job done" job=reconcile')
    good = world.config_path.read_text(encoding="utf-8")
    world.config_path.write_text(
        good.replace("[daemon]", "[daemon]\nno_such_key = 1\nstop_timeout_s = -5\n", 1).replace(
            "stop_timeout_s = 10.0\n", "", 1
        ),
        encoding="utf-8",
    )
    daemon.signal(signal.SIGHUP)
    refused = daemon.wait_log(r"config reload refused")[0]
    assert "no_such_key" in refused and "stop_timeout_s" in refused
    before = len(daemon.matching(r'msg="job done" job=reconcile'))
    daemon.wait_log(r'msg="job done" job=reconcile', count=before + 2)
    assert daemon.get("/healthz").status_code == 200
    world.config_path.write_text(good, encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log(r'msg="config reloaded"')
    assert daemon.stop() == 0


def test_sd_notify_ready_watchdog_stopping(world: DaemonWorld, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(15)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
        daemon = DaemonProcess(world.config_path, env=env)
        try:
            seen: list[str] = []

            def receive_until(field: str) -> None:
                while not any(field in message for message in seen):
                    seen.append(sock.recv(4096).decode())

            receive_until("READY=1")
            receive_until("WATCHDOG=1")
            receive_until("STATUS=last reconcile ok")
            daemon.signal(signal.SIGTERM)
            receive_until("STOPPING=1")
            assert daemon.proc.wait(timeout=15) == 0
        finally:
            daemon.kill()
    ready = next(m for m in seen if "READY=1" in m)
    assert "STATUS=" in ready
    assert sum(m == "WATCHDOG=1" for m in seen) >= 1


@pytest.mark.slow
def test_two_daemons_on_postgres_one_active_then_takeover(
    tmp_path: Path, postgres_url: str
) -> None:
    for world in make_world(tmp_path, postgres_url, people=10):
        second = world.write_config(tmp_path / "second.toml")
        first = DaemonProcess(world.config_path)
        other: DaemonProcess | None = None
        try:
            first.wait_log(r"active: this daemon runs the jobs")
            other = DaemonProcess(second)  # started second, so `first` is the active one
            other.wait_log(r"standby: another daemon holds the lead")
            first.wait_log(r'msg="job done" job=reconcile .*run=\d+', count=3)
            assert not other.matching(r'msg="job done"')
            assert other.metric("syncd_leader") == 0 and first.metric("syncd_leader") == 1
            assert other.get("/healthz").text.strip() == "ok standby"
            refused = world.cli("trigger", "reconcile", config=second)
            assert refused.returncode != 0 and "standby" in refused.stderr
            os.kill(first.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            other.wait_log(r"active: this daemon runs the jobs", timeout=10)
            # standby_poll_s is 0.3 s; the slack is for a loaded CI machine.
            assert time.monotonic() - killed < INTERVAL + 4.0
            other.wait_log(r'msg="job done" job=reconcile .*run=\d+', count=2)
        finally:
            first.kill()
            if other is not None:
                other.kill()
