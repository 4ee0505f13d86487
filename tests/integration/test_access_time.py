"""Access follows time over real HTTP, on SQLite and PostgreSQL (`syncd.engine.access`).

An in-process Engine with an injectable clock applies to two emulated EF-45 terminals:
a future hire is created ahead with access off and gets access exactly when their
window opens; an HR end date that passes, and an active person given a past end date,
disable the person like any leaver. The CLI's `plan` lists the coming boundaries.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from tests.fixtures.syncd_env import SyncdEnv

BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    """A clock the test moves by hand (the Engine's `clock`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _berlin(year: int, month: int, day: int, *hms: int) -> datetime:
    return datetime(year, month, day, *hms, tzinfo=BERLIN).astimezone(UTC)


def _set_row(env: SyncdEnv, key: str, **cells: str) -> None:
    rows = read_people_csv(env.csv_path)
    for row in rows:
        if row["employee_id"] == key:
            row.update(cells)
    write_people_csv(env.csv_path, rows)


def test_future_hire_gets_access_exactly_when_the_window_opens(syncd_env: SyncdEnv) -> None:
    hire = read_people_csv(syncd_env.csv_path)[0]["employee_id"]
    _set_row(syncd_env, hire, start_date="2027-01-04", end_date="", status="active")
    clock = Clock(_berlin(2026, 12, 20, 23, 59, 59))  # 14 days and 1 s before the start
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(hire) == [None, None]
    clock.now = _berlin(2026, 12, 21)  # create_ahead_days = 14: created, access off
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(hire) == [False, False]
    clock.now = _berlin(2027, 1, 3, 23, 59, 59)
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(hire) == [False, False]
    clock.now = _berlin(2027, 1, 4)
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(hire) == [True, True]


def test_past_end_date_is_a_leaver(syncd_env: SyncdEnv) -> None:
    rows = read_people_csv(syncd_env.csv_path)
    ending, given_past = rows[1]["employee_id"], rows[2]["employee_id"]
    for key in (ending, given_past):
        _set_row(syncd_env, key, start_date="2026-01-01", end_date="", status="active")
    _set_row(syncd_env, ending, end_date="2027-01-10")
    clock = Clock(_berlin(2027, 1, 10, 23, 59, 58))
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(ending) == [True, True]
    clock.now = _berlin(2027, 1, 11)  # the end date was the last day: access ends at 24:00
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(ending) == [False, False]
    assert syncd_env.access(given_past) == [True, True]
    _set_row(syncd_env, given_past, end_date="2027-01-09")  # an active user, a past expiry
    syncd_env.apply_in_process(clock)
    assert syncd_env.access(given_past) == [False, False]
    subject = syncd_env.terminals["lobby"].subjects[given_past]
    # defence in depth, kept: the terminal (zone UTC here) also ends it at 24:00 Berlin
    assert subject["match_until"] == "2027-01-09T22:59:59"


def test_plan_lists_coming_boundaries_in_the_site_zone(syncd_env: SyncdEnv) -> None:
    syncd_env.extra_config = ["[access]", 'time_zone = "Europe/Berlin"']
    syncd_env.write_config()
    rows = read_people_csv(syncd_env.csv_path)
    hire = rows[0]
    start = date.today() + timedelta(days=3)
    _set_row(syncd_env, hire["employee_id"], start_date=start.isoformat(), status="active")
    text = syncd_env.run("plan", check=True).stdout
    name = f"{hire['first_name']} {hire['last_name']}"
    expected = f"{hire['employee_id']} {name} gets access at lobby, lab on {start} 00:00"
    assert expected + " Europe/Berlin" in text
    report = json.loads(syncd_env.run("plan", "--format", "json").stdout)
    (coming,) = [u for u in report["upcoming"] if u["person"] == hire["employee_id"]]
    assert coming["change"] == "gets_access" and coming["targets"] == ["lobby", "lab"]
    assert datetime.fromisoformat(coming["at"]) == datetime.combine(
        start, datetime.min.time(), BERLIN
    )
    created = syncd_env.run("apply", "--yes")
    assert created.returncode == 0, created.stdout + created.stderr
    assert syncd_env.access(hire["employee_id"]) == [False, False]
