"""History tells the truth: a killed apply is closed by the next run with the counts it
reached; `history` shows applies unless `--all`; `status` names each target's last error.

`syncd apply` runs as a real process against an EF-45 emulator that stops answering
after its first writes (`tests.fixtures.stalls`), and is killed with SIGKILL there.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.ledger.deadruns import DEAD_MESSAGE
from syncd.ledger.schema import changes, runs
from tests.e2e.test_stops_and_faults import stalled_world
from tests.fixtures.stalls import Stall
from tests.fixtures.syncd_env import SYNCD, SyncdEnv


def run_rows(url: str) -> list[sa.Row[tuple[int, str, str, str | None]]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(runs.c.id, runs.c.outcome, runs.c.counts, runs.c.message)
            return list(conn.execute(query.order_by(runs.c.id)))
    finally:
        engine.dispose()


def applied_changes(url: str, run_id: int) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(
                changes.c.run_id == run_id, changes.c.outcome == "applied"
            )
            return int(conn.execute(query).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_apply_is_marked_interrupted_by_the_next_run_with_its_counts(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/ledger.db"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    stall = Stall(mode="hang", after=5)
    for world in stalled_world(tmp_path, url, stall):
        process = subprocess.Popen(
            [*SYNCD, "apply", "--yes", "--config", str(world.config_path)],
            cwd=world.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert stall.arrived.wait(30)  # five users written, the sixth hangs
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        ((killed, outcome, _, _),) = run_rows(url)
        assert outcome == "running"  # nobody could record its end
        # Outcomes are committed in groups: those committed before the kill are the counts.
        recorded = applied_changes(url, killed)
        assert 1 <= recorded <= 5

        history = world.cli("history")
        assert history.returncode == 0 and "running" in history.stdout
        stall.after = 10**9  # the terminal answers again
        again = world.cli("apply", "--yes")
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]

        rows = {row[0]: row for row in run_rows(url)}
        _, outcome, counts, message = rows[killed]
        assert outcome == "interrupted" and message == DEAD_MESSAGE
        assert json.loads(counts) == {"lobby": {"applied": recorded}}
        assert [row[1] for row in rows.values()] == ["interrupted", "ok"]


def test_history_shows_applies_unless_all(syncd_env: SyncdEnv) -> None:
    syncd_env.run("plan", check=True)
    syncd_env.run("apply", "--yes", check=True)
    syncd_env.run("plan", check=True)
    shown = syncd_env.run("history", check=True).stdout
    assert "(dry)" not in shown and "apply" in shown
    everything = syncd_env.run("history", "--all", check=True).stdout
    assert everything.count("plan (dry)") == 2 and "apply" in everything


def test_status_names_the_last_error_of_each_target(syncd_env: SyncdEnv) -> None:
    syncd_env.terminals["lab"].capacity = 5  # "DB is full" after five users
    failed = syncd_env.run("apply", "--yes")
    assert failed.returncode == 8, failed.stdout + failed.stderr
    status = syncd_env.run("status", check=True).stdout
    lab = next(line for line in status.splitlines() if line.startswith("│ lab"))
    lobby = next(line for line in status.splitlines() if line.startswith("│ lobby"))
    assert "full" in lab.lower(), status
    assert lobby.rstrip("│ ").endswith("ok"), status  # no error: the column stays empty
