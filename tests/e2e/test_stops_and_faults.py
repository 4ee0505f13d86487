"""Stops on time and environmental faults, with `syncd` as a real process.

- The daemon stops within `stop_timeout_s` while a terminal never answers its POST /user
  (with a 60 s request timeout): the run is interrupted, the terminal unlocked; a job
  over `job_deadline_s` is cancelled the same way and the next one runs.
- `syncd apply` stops on SIGINT (Ctrl-C) the same way: one line, exit 130.
- PostgreSQL's connections of an apply killed mid-run (`pg_terminate_backend`): one
  clear line, exit 5, and the next run converges.
- A `mysql://` ledger URL (exit 3), a taken metrics port (exit 3), a full disk (exit 11):
  one line each, never a traceback.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.ledger.schema import runs
from tests.fixtures.daemon import DaemonProcess, DaemonWorld
from tests.fixtures.services import POSTGRES_URL
from tests.fixtures.stalls import Stall
from tests.fixtures.syncd_env import SYNCD

STOP_TIMEOUT_S = 4.0


def stalled_world(tmp_path: Path, ledger_url: str, stall: Stall) -> Iterator[DaemonWorld]:
    """Yield a daemon world whose one terminal `lobby` is wrapped in `stall`, with a 60 s
    request timeout (so only cancellation can stop on time)."""
    state = Ef45State()
    stall.app = create_ef45_app(state)
    server = EmulatorServer(stall).start()
    try:
        world = DaemonWorld(tmp_path, ledger_url, {"lobby": state}, [server])
        world.daemon["stop_timeout_s"] = STOP_TIMEOUT_S
        write_people_csv(world.csv_path, sample_rows(12))
        write_slow_config(world)
        done = world.cli("db", "upgrade")
        assert done.returncode == 0, done.stderr
        yield world
    finally:
        server.stop()


def write_slow_config(world: DaemonWorld) -> None:
    world.write_config()
    text = world.config_path.read_text(encoding="utf-8").replace("timeout_s = 5", "timeout_s = 60")
    world.config_path.write_text(text, encoding="utf-8")


def run_outcomes(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [str(o) for o in conn.scalars(sa.select(runs.c.outcome).order_by(runs.c.id))]
    finally:
        engine.dispose()


def run_counts(url: str) -> list[dict[str, dict[str, int]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.scalars(sa.select(runs.c.counts).order_by(runs.c.id))
            return [json.loads(counts) for counts in rows]
    finally:
        engine.dispose()


def one_clean_error(stderr: str) -> str:
    """Return the one error line of `stderr`; fail on a traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_daemon_stops_on_time_while_a_terminal_hangs(tmp_path: Path) -> None:
    stall = Stall(mode="hang", after=3)
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        daemon = DaemonProcess(world.config_path)
        try:
            assert stall.arrived.wait(30), daemon.log()[-3000:]
            sent = time.monotonic()
            daemon.signal(signal.SIGTERM)
            code = daemon.proc.wait(timeout=STOP_TIMEOUT_S + 10)
            took = time.monotonic() - sent
        finally:
            daemon.kill()
        assert code == 0, daemon.log()[-3000:]
        assert took < STOP_TIMEOUT_S + 2.0, took
        assert world.terminals["lobby"].lock_uid is None  # released on the way out
        assert run_outcomes(world.ledger_url)[-1] == "interrupted"
        # ... with the counts it reached: the three creates the terminal answered.
        assert run_counts(world.ledger_url)[-1] == {"lobby": {"applied": 3}}
        assert len(world.terminals["lobby"].subjects) == 3
        assert daemon.matching(r"job=reconcile .*outcome=interrupted")
        assert "Traceback" not in daemon.log()


def test_a_job_over_its_deadline_is_cancelled_and_frees_the_slot(tmp_path: Path) -> None:
    stall = Stall(mode="hang", after=1)
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        world.daemon["job_deadline_s"] = 2.0
        write_slow_config(world)
        daemon = DaemonProcess(world.config_path)
        try:
            # The second one comes too: the first freed the job slot.
            daemon.wait_log(r"job over its deadline: cancelled.* job=reconcile", count=2)
        finally:
            daemon.kill()
        outcomes = run_outcomes(world.ledger_url)
        assert outcomes[:2] == ["interrupted", "interrupted"], outcomes


def test_cli_apply_stops_on_ctrl_c_while_a_terminal_hangs(tmp_path: Path) -> None:
    stall = Stall(mode="hang", after=2)
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        process = subprocess.Popen(
            [*SYNCD, "apply", "--yes", "--config", str(world.config_path)],
            cwd=world.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert stall.arrived.wait(30)
            sent = time.monotonic()
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=STOP_TIMEOUT_S + 10)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130, out[-2000:] + err[-2000:]
        assert took < STOP_TIMEOUT_S + 2.0, took
        assert "interrupted (SIGINT)" in one_clean_error(err)
        assert world.terminals["lobby"].lock_uid is None
        assert run_outcomes(world.ledger_url) == ["interrupted"]
        # ... with the counts it reached: the two creates the terminal answered.
        assert run_counts(world.ledger_url)[-1] == {"lobby": {"applied": 2}}
        assert len(world.terminals["lobby"].subjects) == 2
        stall.after = 10**9  # the terminal answers again: the next run converges
        again = world.cli("apply", "--yes")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert world.cli("plan", "--check").returncode == 0
        assert len(world.terminals["lobby"].subjects) == 12


@pytest.fixture
def killable_postgres_url(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema's URL whose connections carry an application name of
    their own, so that exactly they can be killed; yield (url, application name)."""
    name = f"syncd_kill_{uuid.uuid4().hex[:8]}"
    yield f"{postgres_url}&application_name={name}", name


def kill_backends(application_name: str) -> int:
    """Terminate every PostgreSQL backend of `application_name`; return how many."""
    admin = sa.create_engine(POSTGRES_URL)
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": application_name},
            ).scalar()
    finally:
        admin.dispose()
    return int(killed or 0)


def test_postgres_connection_killed_mid_apply_is_one_line_and_converges(
    tmp_path: Path, killable_postgres_url: tuple[str, str]
) -> None:
    url, name = killable_postgres_url
    killed: list[int] = []
    stall = Stall(mode="pass", after=4, before_stall=lambda: killed.append(kill_backends(name)))
    for world in stalled_world(tmp_path, url, stall):
        first = world.cli("apply", "--yes")
        assert killed and killed[0] >= 1, "no connection of the apply was killed"
        assert first.returncode == 5, first.stdout[-2000:] + first.stderr[-2000:]
        assert "ledger" in one_clean_error(first.stderr)
        stall.after = 10**9  # the terminal is healthy again (nothing more is killed)
        second = world.cli("apply", "--yes")
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        assert world.cli("plan", "--check").returncode == 0
        assert "running" not in run_outcomes(url)


def test_mysql_ledger_url_is_one_line_and_exit_3(tmp_path: Path) -> None:
    stall = Stall(mode="pass")
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        text = world.config_path.read_text(encoding="utf-8")
        mysql = world.workdir / "mysql.toml"
        mysql.write_text(text.replace(world.ledger_url, "mysql://syncd@db.example/syncd"))
        for args in (["plan"], ["apply", "--yes"], ["run"]):
            done = world.cli(*args, config=mysql)
            assert done.returncode == 3, (args, done.stderr[-2000:])
            line = one_clean_error(done.stderr)
            assert "sqlite, postgresql" in line and "mysql" in line


def test_taken_metrics_port_is_one_line_and_exit_3(tmp_path: Path) -> None:
    stall = Stall(mode="pass")
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            world.write_config(port=port)
            done = subprocess.run(
                [*SYNCD, "run", "--config", str(world.config_path)],
                cwd=world.workdir, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert done.returncode == 3, done.stderr[-2000:]
        assert f"127.0.0.1:{port}" in one_clean_error(done.stderr)


def test_full_disk_is_one_line_and_exit_11(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this host")
    stall = Stall(mode="pass")
    for world in stalled_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", stall):
        done = world.cli("plan", "--output", "/dev/full")
        assert done.returncode == 11, done.stderr[-2000:]
        assert "No space left on device" in one_clean_error(done.stderr)
