"""Skipped source records are never silent: `apply` and `plan --check` exit 9 and name them.

The CLI runs as a real process against emulated terminals. One HR row has a badge number
that is not a number: `apply --yes` applies everyone else, prints the row (file:line and
field) and exits 9; `plan --check` exits 9 too (before "pending", 1); `history` counts the
row. Once the row is fixed, apply brings the person in and `plan --check` exits 0.
And `apply` exits 8 while a quarantined target's actions are deferred, not 0.
"""

from __future__ import annotations

import json

import pytest

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from tests.fixtures.syncd_env import SyncdEnv

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)

BAD_INDEX = 5  # the sixth data row: line 7 of the file (the header is line 1)
BAD_LINE = BAD_INDEX + 2


def _set_badge(env: SyncdEnv, badge: str) -> str:
    """Write `badge` into the bad row; return that row's employee id."""
    rows = read_people_csv(env.csv_path)
    rows[BAD_INDEX]["badge_number"] = badge
    write_people_csv(env.csv_path, rows)
    return rows[BAD_INDEX]["employee_id"]


def test_apply_and_check_exit_9_on_a_bad_row_then_0_once_fixed(syncd_env: SyncdEnv) -> None:
    env = syncd_env
    good_badge = read_people_csv(env.csv_path)[BAD_INDEX]["badge_number"]
    key = _set_badge(env, "12AB")
    where = f"people.csv:{BAD_LINE}:badge_number"

    applied = env.run("apply", "--yes")
    out = applied.stdout + applied.stderr
    assert applied.returncode == 9, out
    assert where in applied.stdout and "badge_number" in applied.stdout, out
    assert "1 source record(s) skipped" in applied.stderr, out
    assert "in step: nothing to do" not in applied.stdout, out
    for name, state in env.terminals.items():
        assert len(state.subjects) == 39 and key not in state.subjects, name

    checked = env.run("plan", "--check")
    assert checked.returncode == 9, checked.stdout + checked.stderr
    assert where in checked.stdout and "1 source record(s) skipped" in checked.stderr
    # Everything readable is in step; the text says so, but not without the skipped row.
    assert "Every target is in step, but 1 source record(s) skipped" in checked.stdout

    history = env.run("history", "--all", check=True).stdout  # --all: the dry run too
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in history.splitlines()]
    by_kind = {row[1]: row for row in rows if len(row) == 7}
    assert by_kind["apply"][5] == "1" and by_kind["plan (dry)"][5] == "1", history

    _set_badge(env, good_badge)
    pending = env.run("plan", "--check")
    assert pending.returncode == 1, pending.stdout + pending.stderr  # the person to create
    fixed = env.run("apply", "--yes")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "0 source record(s) skipped" in fixed.stdout
    in_step = env.run("plan", "--check")
    assert in_step.returncode == 0, in_step.stdout + in_step.stderr
    assert "Every target is in step: nothing to do." in in_step.stdout


def test_plan_without_check_exits_0_and_json_lists_the_row(syncd_env: SyncdEnv) -> None:
    _set_badge(syncd_env, "12AB")
    text = syncd_env.run("plan")
    assert text.returncode == 0, text.stdout + text.stderr
    assert f"people.csv:{BAD_LINE}:badge_number" in text.stdout
    report = syncd_env.run("plan", "--format", "json", "--check")
    assert report.returncode == 9, report.stderr
    document = json.loads(report.stdout)
    assert document["problem_count"] == 1
    (problem,) = document["problem_records"]
    assert document["problems"] == [problem["text"]]
    assert problem["source"] == "hr" and problem["where"].endswith(f":{BAD_LINE}:badge_number")
    assert problem["decision"] in {"held", "disabled", "skipped"}


def test_apply_exits_8_while_a_quarantined_target_defers_its_actions(
    syncd_env: SyncdEnv,
) -> None:
    env = syncd_env
    env.apply_settings.append("quarantine_after = 1")
    env.write_config()
    env.faults["lab"].error_rate = 1.0
    failed = env.run("apply", "--yes")
    assert failed.returncode == 8, failed.stdout + failed.stderr
    env.faults["lab"].error_rate = 0.0
    # lab is quarantined now: its 40 creates are deferred, lobby has nothing left to do.
    deferred = env.run("apply", "--yes")
    assert deferred.returncode == 8, deferred.stdout + deferred.stderr
    assert "0 failed, 0 blocked, 40 deferred" in deferred.stdout, deferred.stdout
    assert "40 deferred" in deferred.stderr and not env.terminals["lab"].subjects
