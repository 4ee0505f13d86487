"""Every wait of apply is bounded: an action's deadline covers all its retries, a target's
deadline gives it up without holding up the others, and a stop cancels the requests in
flight at once (real HTTP to emulated EF-45 terminals over loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.config import load_config
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine import stopping
from syncd.engine.run import Syncer
from syncd.ledger import migrate
from syncd.ledger.schema import runs, target_records
from syncd.ledger.store import create_ledger_engine
from tests.fixtures.stalls import Stall
from tests.fixtures.syncd_env import SyncdEnv

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

PEOPLE = 6


def make_env(
    tmp_path: Path, ledger_url: str, stalls: dict[str, Stall | None], settings: list[str]
) -> Iterator[tuple[SyncdEnv, dict[str, Stall]]]:
    """Yield an env whose terminals are wrapped in the given stalls (None: healthy)."""
    states = {name: Ef45State() for name in stalls}
    wrapped: dict[str, Stall] = {}
    servers = []
    for name, stall in stalls.items():
        app = create_ef45_app(states[name])
        if stall is not None:
            stall.app = app
            wrapped[name] = stall
        servers.append(EmulatorServer(stall or app).start())
    try:
        urls = {n: s.url for n, s in zip(states, servers, strict=True)}
        env = SyncdEnv(tmp_path, ledger_url, states, urls, apply_settings=settings)
        write_people_csv(env.csv_path, sample_rows(PEOPLE))
        env.write_config()
        text = env.config_path.read_text(encoding="utf-8")
        env.config_path.write_text(
            text.replace("timeout_s = 5", "timeout_s = 60"), encoding="utf-8"
        )
        engine = create_ledger_engine(ledger_url)
        migrate.upgrade(engine)
        engine.dispose()
        yield env, wrapped
    finally:
        for server in servers:
            server.stop()


def open_syncer(env: SyncdEnv) -> Syncer:
    return Syncer.from_config(load_config(env.config_path))


def records(env: SyncdEnv, target: str) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(target_records).where(target_records.c.target == target)
            return list(conn.execute(query).all())
    finally:
        engine.dispose()


def test_an_action_that_meets_503_slowly_forever_ends_by_its_deadline(
    tmp_path: Path, ledger_url: str
) -> None:
    # Without the deadline each action would take 21 tries of ~0.25 s: 5 s each.
    settings = ["retries = 20", "action_deadline_s = 1.0"]
    stall = Stall(mode="slow503", slow_s=0.2)
    for env, _ in make_env(tmp_path, ledger_url, {"lobby": stall}, settings):
        engine = open_syncer(env)
        started = time.monotonic()
        try:
            _, result, _ = engine.apply()
        finally:
            engine.close()
        took = time.monotonic() - started
        # Three actions reach their deadline, then the target is given up (a storm).
        assert took < 3 * 1.0 + 3.0, took
        assert result.count("applied") == 0
        assert stall.stalled >= 3
        errors = [r.last_error or "" for r in records(env, "lobby")]
        assert sum(e.startswith("ActionDeadline: action_deadline_s of 1 s") for e in errors) == 3
        assert sum(e.startswith("TargetStorm") for e in errors) == PEOPLE - 3, errors
        assert "3 actions in a row failed" in result.errors["lobby"]
        assert env.terminals["lobby"].lock_uid is None


def test_a_hanging_target_is_given_up_at_its_deadline_and_holds_up_no_other(
    tmp_path: Path, ledger_url: str
) -> None:
    settings = ["target_deadline_s = 1.5", "action_deadline_s = 100"]
    stall = Stall(mode="hang", after=1)
    for env, _ in make_env(tmp_path, ledger_url, {"lobby": None, "lab": stall}, settings):
        engine = open_syncer(env)
        started = time.monotonic()
        try:
            _, result, run_id = engine.apply()
        finally:
            engine.close()
        took = time.monotonic() - started
        assert 1.5 <= took < 1.5 + 3.0, took
        assert result.per_target["lobby"]["applied"] == PEOPLE  # the healthy one, in full
        assert len(env.terminals["lobby"].subjects) == PEOPLE
        assert "target_deadline_s of 1.5 s" in result.errors["lab"]
        lab = {r.person_key: r for r in records(env, "lab")}
        failed = [r for r in lab.values() if r.state == "failed"]
        assert len(failed) == PEOPLE - 1  # the first create went through, then the hang
        assert all("TargetDeadline" in (r.last_error or "") for r in failed)
        assert env.terminals["lab"].lock_uid is None  # released on the way out
        assert run_outcome(env, run_id) == "partial"


def test_a_stop_cancels_the_request_in_flight_and_records_the_run_interrupted(
    tmp_path: Path, ledger_url: str
) -> None:
    stall = Stall(mode="hang", after=2)
    for env, _ in make_env(tmp_path, ledger_url, {"lobby": stall}, []):
        engine = open_syncer(env)
        stop = stopping.Stop()
        sent: list[float] = []

        def stop_when_stalled() -> None:
            if stall.arrived.wait(30):
                sent.append(time.monotonic())
                stop.set("test stop")

        threading.Thread(target=stop_when_stalled, daemon=True).start()
        try:
            _, result, run_id = engine.apply(stop=stop)
        finally:
            engine.close()
        assert result.stopped and sent
        assert time.monotonic() - sent[0] < 2.0  # not the 60 s timeout of the request
        assert result.per_target["lobby"]["applied"] == 2
        assert run_outcome(env, run_id) == "interrupted"
        assert env.terminals["lobby"].lock_uid is None
        # Nothing more was recorded than what was done: the rest is planned again.
        states = sorted(r.state for r in records(env, "lobby"))
        assert states.count("ok") == 2 and "failed" not in states


def run_outcome(env: SyncdEnv, run_id: int) -> str:
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.select(runs.c.outcome).where(runs.c.id == run_id)).scalar())
    finally:
        engine.dispose()
