"""HR CSV → ledger → plan → EF-45 apply over real HTTP, on SQLite and on PostgreSQL.

Convergence as ldap2pg proves it: `plan --check` exits 1, `apply`, `plan --check` exits 0,
and every terminal then holds exactly the people of the HR file.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv
from syncd.targets.ef45.target import card_hex
from tests.fixtures.ef45 import EF45_PROFILE_NAMES
from tests.fixtures.syncd_env import SyncdEnv


def assert_terminals_match_hr(env: SyncdEnv, *, leavers_may_be_absent: bool = False) -> None:
    """Every terminal holds exactly the HR people, leavers with access switched off.

    With `leavers_may_be_absent`, a person disabled in HR before syncd ever created them
    may be missing (syncd never creates someone only to disable them).
    """
    rows = {r["employee_id"]: r for r in read_people_csv(env.csv_path)}
    active = {k for k, r in rows.items() if r["status"] == "active"}
    for name, state in env.terminals.items():
        held = set(state.subjects)
        if leavers_may_be_absent:
            assert active <= held <= set(rows), name
        else:
            assert held == set(rows), name
        for key in held:
            row = rows[key]
            subject = state.subjects[key]
            assert (subject["first_name"], subject["last_name"]) == (
                row["first_name"],
                row["last_name"],
            )
            assert subject["access_allowed"] is (row["status"] == "active"), (name, key)
            assert state.user_info[key]["card"] == card_hex(int(row["badge_number"]))


def test_db_upgrade_from_empty_creates_every_table(syncd_env: SyncdEnv) -> None:
    engine = sa.create_engine(syncd_env.ledger_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"people", "target_records", "enrollments", "runs", "changes", "cursors"} <= tables
    again = syncd_env.run("db", "upgrade")
    assert again.returncode == 0 and "already at" in again.stdout


@pytest.mark.parametrize("ef45_profile", EF45_PROFILE_NAMES)
def test_check_apply_check_converges(syncd_env: SyncdEnv) -> None:
    first = syncd_env.run("plan", "--check")
    assert first.returncode == 1, first.stderr
    applied = syncd_env.run("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert_terminals_match_hr(syncd_env)
    second = syncd_env.run("plan", "--check")
    assert second.returncode == 0, second.stdout
    for state in syncd_env.terminals.values():
        assert state.lock_uid is None


@pytest.mark.parametrize("ef45_profile", EF45_PROFILE_NAMES)
def test_hr_changes_reach_every_terminal(syncd_env: SyncdEnv) -> None:
    syncd_env.run("apply", "--yes", check=True)
    changes = apply_demo_changes(syncd_env.csv_path)
    report = syncd_env.run("plan", "--format", "json")
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["schema"] == "syncd.plan/2"
    people = {p["key"]: p for p in document["people"]}
    assert set(people) == {changes.hired, changes.terminated, changes.card_changed, changes.renamed}
    assert all(p["name"] and p["name"] != p["key"] for p in people.values())
    assert people[changes.hired]["what"][0].startswith("hired: gets access to lobby, lab")
    assert people[changes.terminated]["what"][0].startswith("leaves: access removed at lobby")
    assert people[changes.card_changed]["what"][0].startswith("card ")
    assert " → " in people[changes.card_changed]["what"][0]
    assert people[changes.renamed]["what"][0] == "name Schmidt → Lindqvist-Schmidt"
    for target in ("lobby", "lab"):
        got = {(a["op"], a["person"]) for a in document["targets"][target]}
        assert got == {
            ("create", changes.hired),
            ("disable", changes.terminated),
            ("update", changes.card_changed),
            ("update", changes.renamed),
        }
    syncd_env.run("apply", "--yes", check=True)
    assert_terminals_match_hr(syncd_env)
    assert syncd_env.run("plan", "--check").returncode == 0


def test_json_report_never_contains_a_pin(syncd_env: SyncdEnv) -> None:
    pins = {r["pin"] for r in read_people_csv(syncd_env.csv_path) if r["pin"]}
    document = json.loads(syncd_env.run("plan", "--format", "json", check=True).stdout)
    text = json.dumps(document)
    changes = [a["changes"] for acts in document["targets"].values() for a in acts]
    assert all(c.get("pin", [None, None])[1] in (None, "<redacted>") for c in changes)
    assert not any(f'"{pin}"' in text for pin in pins)
