"""`syncd events collect` / `list` against emulated EF-45 terminals and a CLUe place."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.config import Ef45TargetConfig
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.server import EmulatorServer
from syncd.engine.events import collect_from, cursor_name
from syncd.ledger import migrate
from syncd.ledger.events import last_access, list_events
from syncd.ledger.schema import events
from syncd.ledger.store import Ledger, create_ledger_engine
from syncd.targets.ef45.target import Ef45Target
from tests.fixtures.clue_env import ClueEnv
from tests.integration.test_clue_convergence import ok_rows


def count_events(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(events.c.target, sa.func.count()).group_by(events.c.target)
            return {target: n for target, n in conn.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
def test_collect_twice_stores_each_event_once(syncd_clue_env: ClueEnv) -> None:
    clue, env = syncd_clue_env, syncd_clue_env.env
    env.run("apply", "--yes", check=True)
    key, other = "E000001", "E000002"
    auth_id = ok_rows(clue)[key]
    lobby = env.terminals["lobby"]
    allowed = lobby.append_log("Recognition", key, "Recog/BioOnly/IrisOk", "Allowed")
    lobby.append_log("Recognition", "", "Recog/BioOnly/IrisFail", "Denied")
    now_ms = int(time.time() * 1000)
    clue.state.add_access_event(
        "DEV_FACE_AUTH_SUCCESS", at_ms=now_ms - 60_000, auth_id=int(auth_id)
    )
    clue.state.add_access_event("DEV_FACE_AUTH_FAIL", at_ms=now_ms - 30_000, user_key=other)

    first = env.run("events", "collect")
    assert first.returncode == 0, first.stdout + first.stderr
    counts = count_events(env.ledger_url)
    # Every log and event so far: 40 adds on each terminal, 40 auth creations in CLUe.
    assert counts == {"lobby": 42, "lab": 40, "cloud": 42}
    assert env.run("events", "collect").returncode == 0
    assert count_events(env.ledger_url) == counts

    engine = create_ledger_engine(env.ledger_url)
    try:
        ledger = Ledger(engine)
        assert ledger.get_cursor(cursor_name("lobby")) == str(max(lobby.logs))
        newest = max(e["eventAt"] for e in clue.state.events)
        assert ledger.get_cursor(cursor_name("cloud")) == str(newest)
        # The terminal's "Allowed" came after CLUe's success (a minute ago).
        at = datetime.strptime(allowed["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert last_access(engine, key) == at
        assert last_access(engine, other) is None  # only a refusal
        mine = list_events(engine, person_key=key)
        assert {(e.target, e.result) for e in mine} >= {("lobby", "allowed"), ("cloud", "allowed")}
    finally:
        engine.dispose()

    listed = env.run("events", "list", "--person", key)
    assert listed.returncode == 0, listed.stderr
    assert "Recognition" in listed.stdout and "DEV_FACE_AUTH_SUCCESS" in listed.stdout
    assert other not in listed.stdout
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = env.run("events", "list", "--person", key, "--since", since)
    assert "Recognition" not in later.stdout
    assert len(lobby.logs) == 42  # never deleted unless configured
    report = json.loads(env.run("plan", "--format", "json", "--person", key).stdout)
    assert f"{key}: last access {at:%Y-%m-%d %H:%M:%S} UTC" in report["notes"]
    never = json.loads(env.run("plan", "--format", "json", "--person", other).stdout)
    assert f"{other}: last access none recorded" in never["notes"]


def ledger_and_terminal(url: str, logs: int) -> tuple[sa.Engine, Ledger, Ef45State]:
    """A migrated ledger at `url` and an EF-45 state holding `logs` recognitions."""
    engine = create_ledger_engine(url)
    migrate.upgrade(engine)
    state = Ef45State()
    for index in range(logs):
        state.append_log("Recognition", f"E{index}", "Recog", "Allowed")
    return engine, Ledger(engine), state


def test_logs_are_deleted_only_when_configured(tmp_path: Path) -> None:
    from syncd.emulators.ef45 import create_ef45_app

    engine, ledger, state = ledger_and_terminal(f"sqlite:///{tmp_path}/ledger.db", 5)
    try:
        with EmulatorServer(create_ef45_app(state)) as server:
            keep = Ef45Target("door", Ef45TargetConfig(type="ef45", url=server.url))
            report = collect_from(ledger, {"door": keep}, lambda: datetime.now(UTC))
            assert [(r.read, r.stored, r.cursor) for r in report.results] == [(5, 5, "5")]
            assert len(state.logs) == 5
            state.append_log("Recognition", "E9", "Recog", "Denied")
            config = Ef45TargetConfig(type="ef45", url=server.url, delete_logs_after_collect=True)
            purge = Ef45Target("door", config)
            report = collect_from(ledger, {"door": purge}, lambda: datetime.now(UTC))
            assert [(r.read, r.stored, r.cursor) for r in report.results] == [(1, 1, "6")]
            assert set(state.logs) == {1, 2, 3, 4, 5}  # only what this collect stored
            assert state.lock_uid is None
    finally:
        engine.dispose()


def test_a_stored_ef45_cursor_that_is_not_a_log_id_is_discarded_and_collect_goes_on(
    ledger_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A cursor an older syncd (or a hostile answer) left holding CR/LF: the collect
    warns, reads from the start, stores each event once and replaces the cursor."""
    from syncd.emulators.ef45 import create_ef45_app

    engine, ledger, state = ledger_and_terminal(ledger_url, 3)
    try:
        ledger.set_cursor(cursor_name("door"), "2\r\nX: 1", datetime.now(UTC))
        with EmulatorServer(create_ef45_app(state)) as server:
            door = Ef45Target("door", Ef45TargetConfig(type="ef45", url=server.url))
            report = collect_from(ledger, {"door": door}, lambda: datetime.now(UTC))
        assert [(r.read, r.stored, r.cursor, r.error) for r in report.results] == [
            (3, 3, "3", None)
        ]
        assert "discarded a stored events cursor that is not a log id" in caplog.text
        assert "\r\n" not in caplog.text  # shown escaped
        assert ledger.get_cursor(cursor_name("door")) == "3"
    finally:
        engine.dispose()


def test_a_target_that_is_down_does_not_stop_the_others(tmp_path: Path) -> None:
    from syncd.emulators.ef45 import create_ef45_app
    from syncd.emulators.server import free_port

    url = f"sqlite:///{tmp_path}/ledger.db"
    engine = create_ledger_engine(url)
    migrate.upgrade(engine)
    state = Ef45State()
    state.append_log("Recognition", "E1", "Recog", "Allowed")
    try:
        with EmulatorServer(create_ef45_app(state)) as server:
            targets = {
                "up": Ef45Target("up", Ef45TargetConfig(type="ef45", url=server.url)),
                "down": Ef45Target(
                    "down",
                    Ef45TargetConfig(
                        type="ef45", url=f"http://127.0.0.1:{free_port()}", timeout_s=1
                    ),
                ),
            }
            report = collect_from(Ledger(engine), targets, lambda: datetime.now(UTC))
        by_target = {r.target: r for r in report.results}
        assert by_target["up"].stored == 1 and by_target["up"].error is None
        assert by_target["down"].error is not None
        assert str(report) == "down: failed; up: 1 new of 1"
    finally:
        engine.dispose()
