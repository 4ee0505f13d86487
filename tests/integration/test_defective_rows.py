"""A defect never keeps a leaver in, over real HTTP on SQLite and PostgreSQL (issue 13.3).

An in-process Syncer applies the HR export to two emulated EF-45 terminals. Once everyone
has access, rows turn defective: a terminated row with an unreadable end date, a
terminated row with a bad badge, a second row of one person saying terminated, an
active row with an unreadable end date. Each of those people loses access on every
terminal (the leaver path), while an active row with a bad badge is held (access kept)
and a defective terminated row of someone no terminal holds creates nothing. So many
disabled rows would read as a shrunk source if the guard did not count them as seen.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.config import load_config
from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from syncd.engine.run import Syncer
from syncd.sources.base import Decision
from tests.fixtures.syncd_env import SyncdEnv

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)  # after every sample start date


def _engine(env: SyncdEnv) -> Syncer:
    return Syncer.from_config(load_config(env.config_path), clock=lambda: NOW)


def test_a_defective_row_never_keeps_a_leaver_in(syncd_env: SyncdEnv) -> None:
    syncd_env.extra_config = ["max_bad_share = 0.5"]  # still inside [sources.hr]
    syncd_env.write_config()
    syncd_env.apply_in_process(lambda: NOW)
    rows = read_people_csv(syncd_env.csv_path)
    keys = [row["employee_id"] for row in rows]
    assert all(syncd_env.access(key) == [True, True] for key in keys)

    cases = {
        "terminated, unreadable end date": {"status": "terminated", "end_date": "31.12.2026"},
        "terminated, bad badge": {"status": "terminated", "badge_number": "12x3"},
        "active, unreadable end date": {"end_date": "2026-02-30"},
        "active, unreadable start date": {"start_date": "next monday"},
    }
    for row, cells in zip(rows, cases.values(), strict=False):
        row.update(cells)
    duplicate = {**rows[4], "status": "terminated"}  # a second row for rows[4]
    rows[5]["badge_number"] = "12x3"  # active, bad badge: held, keeps access
    for row in rows[6:14]:  # enough leavers to trip the shrink guard if uncounted
        row.update(status="leave", pin="12ab")
    unknown = {**rows[0], "employee_id": "E999999", "status": "terminated", "pin": "x"}
    write_people_csv(syncd_env.csv_path, [*rows, duplicate, unknown])

    engine = _engine(syncd_env)
    try:
        reading = engine.read()
    finally:
        engine.close()
    disabled = {*keys[:5], *keys[6:14], "E999999"}
    (read,) = reading.reads.values()
    assert read.disabled == disabled and read.held == {keys[5]}
    decisions = {p.where.split(":")[1]: p.decision for p in reading.problems}
    assert decisions["2"] is Decision.DISABLED and decisions["7"] is Decision.HELD
    assert all(reading.desired.people[key].status.value == "disabled" for key in disabled)

    syncd_env.apply_in_process(lambda: NOW)
    for key in disabled - {"E999999"}:
        assert syncd_env.access(key) == [False, False], key
    assert syncd_env.access(keys[5]) == [True, True]
    assert syncd_env.access("E999999") == [None, None]
    assert all(syncd_env.access(key) == [True, True] for key in keys[14:])

    engine = _engine(syncd_env)  # converged: the next plan changes nothing
    try:
        plan = engine.plan(engine.read())
    finally:
        engine.close()
    assert plan.actions == ()

    # A disabled person whose row then says active but is still defective (bad badge) is
    # only held: "nothing changes" keeps them disabled, never gives access back.
    rows[1]["status"] = "active"
    write_people_csv(syncd_env.csv_path, [*rows, duplicate, unknown])
    syncd_env.apply_in_process(lambda: NOW)
    assert syncd_env.access(keys[1]) == [False, False]
