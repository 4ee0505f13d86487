"""Removal caps hold over time, over real HTTP on SQLite and PostgreSQL (`engine.safety`).

The walk-around the per-run caps alone allowed: HR drops people in batches at the
per-run cap (10 % of those with access), run after run. An in-process Syncer with a
clock moved one hour a run applies to two emulated EF-45 terminals with the default
caps (per run 50 / 10 %, per 24 h 100 / 20 %): the 24 h window lets 19 of 100 go and
blocks the rest with its reason; an approval releases them (and they never count
against the window); once the first batch is 24 h old, removals resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from syncd.config import load_config
from syncd.emulators.hr_sample import read_people_csv, sample_rows, write_people_csv
from syncd.engine.run import ApplyOptions, Syncer
from syncd.ledger import queries
from syncd.ledger.removals import RecentRemovals, removals_since
from syncd.ledger.schema import changes
from syncd.model import Plan
from tests.fixtures.syncd_env import SyncdEnv

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
WINDOW_REASON = "removals in the last 24 h + {planned} planned exceed the 24 h cap of {cap} "


class Clock:
    """A clock the test moves by hand (the Syncer's `clock`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at_hour(self, hour: float) -> None:
        self.now = START + timedelta(hours=hour)


@pytest.fixture
def hundred(syncd_env: SyncdEnv) -> Iterator[tuple[SyncdEnv, Syncer, Clock]]:
    """100 people in HR, all created on both terminals at START; the engine and its clock."""
    write_people_csv(syncd_env.csv_path, sample_rows(100))
    clock = Clock(START)
    engine = Syncer.from_config(load_config(syncd_env.config_path), clock=clock)
    try:
        _, result, _ = engine.apply()
        assert result.count("applied") == 200
        yield syncd_env, engine, clock
    finally:
        engine.close()


def _terminate(env: SyncdEnv, count: int) -> None:
    """Mark the first `count` still active people of the HR file terminated."""
    rows = read_people_csv(env.csv_path)
    for row in [r for r in rows if r["status"] == "active"][:count]:
        row["status"] = "terminated"
    write_people_csv(env.csv_path, rows)


def _without_access(env: SyncdEnv) -> list[int]:
    """Return, per terminal, how many of its users have access switched off."""
    return [
        sum(1 for s in state.subjects.values() if not s["access_allowed"])
        for state in env.terminals.values()
    ]


def _reasons(plan: Plan) -> set[str]:
    return {a.blocked for a in plan.actions if a.blocked is not None}


def _walk_around(env: SyncdEnv, engine: Syncer, clock: Clock) -> tuple[list[Plan], int]:
    """Hours 1 to 24: a new batch at the per-run cap whenever the last one went through.

    Return every run's plan and the id of the last run.
    """
    plans: list[Plan] = []
    with_access, run_id = 100, 0
    for hour in range(1, 25):
        clock.at_hour(hour)
        if not plans or not plans[-1].blocked:
            batch = with_access // 10  # exactly the per-run cap: never over it
            _terminate(env, batch)
            with_access -= batch
        plan, result, run_id = engine.apply()
        assert result.count("failed") == 0
        plans.append(plan)
    return plans, run_id


def test_window_blocks_batches_under_the_run_cap_until_approved_or_past(
    hundred: tuple[SyncdEnv, Syncer, Clock],
) -> None:
    env, engine, clock = hundred
    plans, last_run = _walk_around(env, engine, clock)
    # 10 at 1 h and 9 at 2 h went through; the batch of 8 at 3 h would make 27 of the
    # 100 who had access at the window's start: over 20 %, blocked until 24 h later.
    assert [p.blocked for p in plans[:2]] == [0, 0]
    assert _without_access(env) == [19, 19]
    window = "19 " + WINDOW_REASON.format(planned=8, cap=20)
    assert all(p.blocked == 16 for p in plans[2:])  # 8 on each terminal, every hour since
    assert all(_reasons(p) == {window + "for 100 people with access at the window's start"}
               for p in plans[2:])  # fmt: skip
    assert all(s.disable == 0 for p in plans[2:] for s in p.summaries)

    # Approved (as `syncd approve RUN` does): the 8 go, and never count against the window.
    released = queries.blocked_in_run(engine.ledger.db, last_run)
    assert len(released) == 16
    plan, result, _ = engine.apply(ApplyOptions(released=released))
    assert plan.blocked == 0 and result.count("applied") == 16
    assert _without_access(env) == [27, 27]
    _terminate(env, 1)  # 19 counted + 1 = the window's cap of 20: the released 8 are not counted
    plan, result, _ = engine.apply()
    assert plan.blocked == 0 and result.count("applied") == 2
    _terminate(env, 5)
    plan, _, _ = engine.apply()
    assert plan.blocked == 10
    assert _reasons(plan) == {
        "20 " + WINDOW_REASON.format(planned=5, cap=20)
        + "for 100 people with access at the window's start"
    }  # fmt: skip

    # 24 h after the first batch, its 10 have left the window: 10 counted + 5 ≤ 18
    # (20 % of the 72 with access + the 18 disabled since).
    clock.at_hour(25)
    plan, result, _ = engine.apply()
    assert plan.blocked == 0 and result.count("applied") == 10
    assert _without_access(env) == [33, 33]

    # --allow-deletes N replaces every cap for one run, and releases what it lets through.
    _terminate(env, 20)
    assert engine.apply()[0].blocked == 40  # over the per-run cap of 6 (10 % of 67)
    plan, result, _ = engine.apply(ApplyOptions(allow_deletes=20))
    assert plan.blocked == 0 and result.count("applied") == 40
    assert _without_access(env) == [53, 53]
    _assert_ledger_counts(engine)


def _assert_ledger_counts(engine: Syncer) -> None:
    """The window's query: released removals (8 approved + 20 allowed) are not counted."""
    recent = removals_since(engine.ledger.db, START)
    assert recent == {name: RecentRemovals(counted=25, people=53) for name in ("lobby", "lab")}
    assert removals_since(engine.ledger.db, START + timedelta(hours=23, minutes=59)) == {
        name: RecentRemovals(counted=6, people=34) for name in ("lobby", "lab")
    }
    query = (
        sa.select(changes.c.error, sa.func.count())
        .where(changes.c.outcome == "released")
        .group_by(changes.c.error)
    )
    with engine.ledger.db.connect() as conn:
        released = {str(error): int(n) for error, n in conn.execute(query)}
    assert released == {
        "released by an administrator's approval": 16,
        "released by --allow-deletes 20": 40,
    }
