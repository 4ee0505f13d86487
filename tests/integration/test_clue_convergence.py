"""HR CSV → plan → apply on emulated EF-45 terminals and an emulated CLUe place, via the CLI.

Convergence (`plan --check` 1 → `apply --yes` → `plan --check` 0) on SQLite and
PostgreSQL, a termination reaching CLUe as INACTIVE, and a person CLUe cannot take
(no door mapped) reported as a note while everyone else is applied.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from syncd.config import load_config
from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv
from syncd.engine.factory import build_targets
from syncd.ledger.schema import target_records
from syncd.model import Person
from syncd.targets.clue.target import ClueTarget, epoch_ms
from tests.fixtures.clue_env import CLUE_TARGET, CLUE_ZONE, ClueEnv, clue_target_lines

# Three CLI runs of 40 people on three targets, on SQLite and PostgreSQL: ~30-45 s loaded.
pytestmark = pytest.mark.slow
ZONE = ZoneInfo(CLUE_ZONE)
HR_ZONE = ZoneInfo("Europe/Berlin")  # the shipped hr-csv mapping's zone


def expected_window(row: dict[str, str]) -> tuple[int, int]:
    """The startTime/endTime the HR row must give, computed apart from the target."""
    start = datetime.combine(datetime.fromisoformat(row["start_date"]).date(), time(), HR_ZONE)
    if row["end_date"]:
        day = datetime.fromisoformat(row["end_date"]).date() + timedelta(days=1)
        end = datetime.combine(day, time(), HR_ZONE) - timedelta(seconds=1)
    else:
        end = datetime(2099, 12, 31, 23, 59, 59, tzinfo=ZONE)
    return epoch_ms(start), epoch_ms(end)


def assert_clue_matches_hr(clue: ClueEnv) -> None:
    rows = {r["employee_id"]: r for r in read_people_csv(clue.env.csv_path)}
    held = {a.key: a for a in clue.state.auths.values()}
    assert set(held) == set(rows)
    for key, row in rows.items():
        auth = held[key].auth
        assert held[key].name == f"{row['first_name']} {row['last_name']}"
        assert (auth["startTime"], auth["endTime"]) == expected_window(row), key
        want = "ACTIVE" if row["status"] == "active" else "INACTIVE"
        assert auth["activeStatus"] == want, key
        cards = auth["credentials"]["cards"]
        assert cards == [{"cardNumber": row["badge_number"], "formatType": "CSN"}]


def ok_rows(clue: ClueEnv) -> dict[str, str | None]:
    engine = sa.create_engine(clue.env.ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(target_records.c.person_key, target_records.c.remote_id).where(
                target_records.c.target == CLUE_TARGET, target_records.c.state == "ok"
            )
            return {key: remote for key, remote in conn.execute(query)}
    finally:
        engine.dispose()


def test_check_apply_check_converges_with_clue(syncd_clue_env: ClueEnv) -> None:
    clue = syncd_clue_env
    assert clue.env.run("plan", "--check").returncode == 1
    applied = clue.env.run("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert_clue_matches_hr(clue)
    remote = ok_rows(clue)
    assert remote == {a.key: str(a.auth_id) for a in clue.state.auths.values()}
    second = clue.env.run("plan", "--check")
    assert second.returncode == 0, second.stdout

    changes = apply_demo_changes(clue.env.csv_path)
    again = clue.env.run("apply", "--yes")
    assert again.returncode == 0, again.stdout + again.stderr
    assert_clue_matches_hr(clue)
    terminated = clue.state.auth_by_key(changes.terminated)
    assert terminated is not None and terminated.auth["activeStatus"] == "INACTIVE"
    assert clue.env.run("plan", "--check").returncode == 0


SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_render_error_is_a_note_not_a_crash(syncd_clue_env: ClueEnv) -> None:
    clue = syncd_clue_env
    # A door map that covers every department but Finance: Finance people are skipped.
    doors = ("[targets.cloud.doors]", *(f"{d} = [234]" for d in _departments() - {"finance"}))
    clue.use_target(*clue_target_lines(clue.server.url, clue.key_file), *doors)
    finance = {
        r["employee_id"]
        for r in read_people_csv(clue.env.csv_path)
        if r["department"].lower() == "finance"
    }
    assert finance, "the sample should have Finance people"
    planned = clue.env.run("plan")
    assert planned.returncode == 0, planned.stderr
    assert f"cloud: {sorted(finance)[0]}: groups:" in planned.stdout
    clue.env.run("apply", "--yes", check=True)
    assert {a.key for a in clue.state.auths.values()}.isdisjoint(finance)
    assert all(a.auth["doorIds"] == [234] for a in clue.state.auths.values())


def _departments() -> set[str]:
    from syncd.emulators.hr_sample import DEPARTMENTS

    return {d.lower() for d in DEPARTMENTS}


@SQLITE_ONLY
def test_factory_builds_a_clue_target(syncd_clue_env: ClueEnv) -> None:
    config = load_config(syncd_clue_env.env.config_path)
    target = build_targets(config, only=frozenset({CLUE_TARGET}))[CLUE_TARGET]
    assert isinstance(target, ClueTarget)
    record = target.render(Person(key="k", first_name="A", last_name="B"), ())
    assert record["name"] == "A B"
