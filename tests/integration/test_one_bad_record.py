"""One bad record stays one bad record; cards move in one run; any key reaches a target.

Real HTTP to emulated EF-45 terminals (lobby: new firmware, batch calls; lab: old
firmware, separate calls) and an emulated CLUe place, the engine in-process, on SQLite
and PostgreSQL (`syncd_env`'s `ledger_url`):

- a record the terminal refuses for good fails alone, run after run: the terminal is
  never quarantined, and a leaver on it is disabled in every one of those runs; with a
  real backoff, the next run defers that record and applies the rest; a 5xx about one
  record is that record's failure, a storm of them the terminal's;
- a badge swap between two people, and a leaver's badge reissued to a new hire, converge
  in one run (the terminal refuses a card another user holds, disabled or not);
- keys holding `/`, `?`, `%`, a space and `é` are created, updated and disabled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from syncd.config import load_config
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.apply import ApplyResult
from syncd.engine.run import ApplyOptions, Syncer
from syncd.ledger.health import load_health
from syncd.model import Op, Plan
from syncd.targets.ef45.client import Ef45Client
from syncd.targets.ef45.target import card_hex
from tests.fixtures.clue_env import CLUE_TARGET, ClueEnv
from tests.fixtures.syncd_env import SyncdEnv

KEYS = ("HR/2024/007", "who?", "50%off", "with space", "Zoë-é")


@contextmanager
def engine_of(env: SyncdEnv) -> Iterator[Syncer]:
    engine = Syncer.from_config(load_config(env.config_path))
    try:
        yield engine
    finally:
        engine.close()


def apply(env: SyncdEnv, allow_deletes: int | None = None) -> tuple[Plan, ApplyResult, Plan]:
    """Apply once; return the plan applied, its result, and the plan that follows."""
    with engine_of(env) as engine:
        plan, result, _ = engine.apply(ApplyOptions(trigger="test", allow_deletes=allow_deletes))
        return plan, result, engine.plan(engine.read())


def edit_hr(env: SyncdEnv, **changes: dict[str, str]) -> list[dict[str, str]]:
    """Apply `changes` (employee id → fields) to the HR file; return its rows."""
    rows = read_people_csv(env.csv_path)
    for row in rows:
        row.update(changes.get(row["employee_id"], {}))
    write_people_csv(env.csv_path, rows)
    return rows


def add_people(env: SyncdEnv, *rows: dict[str, str]) -> None:
    write_people_csv(env.csv_path, [*read_people_csv(env.csv_path), *rows])


def person(key: str, badge: int) -> dict[str, str]:
    return {
        "employee_id": key, "first_name": "Nina", "last_name": "Hall", "email": "",
        "department": "Sales", "status": "active", "start_date": "2020-01-01",
        "end_date": "", "badge_number": str(badge), "pin": "",
    }  # fmt: skip


def card_of(state: Ef45State, key: str) -> str:
    return str(state.user_info[key].get("card", ""))


def quarantined(env: SyncdEnv) -> dict[str, tuple[int, bool]]:
    with engine_of(env) as engine:
        health = load_health(engine.ledger.db)
    return {name: (h.consecutive_failures, h.quarantined) for name, h in health.items()}


def key_of(rows: list[dict[str, str]], index: int) -> str:
    return rows[index]["employee_id"]


# -- one bad record ------------------------------------------------------------------------


def test_a_record_refused_for_good_never_quarantines_its_terminal(syncd_env: SyncdEnv) -> None:
    syncd_env.apply_settings = ["quarantine_after = 2"]
    syncd_env.write_config()
    apply(syncd_env)
    lobby = syncd_env.terminals["lobby"]
    rows = read_people_csv(syncd_env.csv_path)
    bad = key_of(rows, 0)
    lobby.refused_writes[bad] = 400  # every write about this user: 400, for good
    edit_hr(syncd_env, **{bad: {"last_name": "Renamed"}})
    for run in range(4):  # twice quarantine_after
        leaver = key_of(rows, 10 + run)
        edit_hr(syncd_env, **{leaver: {"status": "terminated"}})
        plan, result, _ = apply(syncd_env)
        assert result.per_target["lobby"]["failed"] == 1 and "lobby" not in result.errors
        assert [a.op for a in plan.for_target("lobby")] == [Op.DISABLE, Op.UPDATE]
        for name, state in syncd_env.terminals.items():
            assert state.subjects[leaver]["access_allowed"] is False, (run, name)
        assert quarantined(syncd_env)["lobby"] == (0, False)
    assert lobby.subjects[bad]["last_name"] != "Renamed"
    assert syncd_env.terminals["lab"].subjects[bad]["last_name"] == "Renamed"


def test_a_record_in_backoff_is_deferred_and_the_rest_proceeds(syncd_env: SyncdEnv) -> None:
    text = syncd_env.config_path.read_text(encoding="utf-8")
    syncd_env.config_path.write_text(
        text.replace("next_attempt_base_s = 0", "next_attempt_base_s = 3600"), encoding="utf-8"
    )
    apply(syncd_env)
    rows = read_people_csv(syncd_env.csv_path)
    bad, first, second = key_of(rows, 0), key_of(rows, 10), key_of(rows, 11)
    lobby = syncd_env.terminals["lobby"]
    lobby.refused_writes[bad] = 409
    edit_hr(syncd_env, **{bad: {"last_name": "Renamed"}, first: {"status": "terminated"}})
    _, result, _ = apply(syncd_env)
    assert result.per_target["lobby"]["failed"] == 1
    edit_hr(syncd_env, **{second: {"status": "terminated"}})
    plan, result, after = apply(syncd_env)
    summary = next(s for s in plan.summaries if s.target == "lobby")
    assert (summary.deferred, summary.disable, summary.update) == (1, 1, 0)
    assert result.per_target["lobby"] == {"applied": 1}
    assert lobby.subjects[second]["access_allowed"] is False
    assert next(s for s in after.summaries if s.target == "lobby").deferred == 1
    assert quarantined(syncd_env)["lobby"] == (0, False)


def test_a_5xx_about_one_record_is_its_own_and_a_storm_is_the_terminals(
    syncd_env: SyncdEnv,
) -> None:
    apply(syncd_env)
    rows = read_people_csv(syncd_env.csv_path)
    renamed = [key_of(rows, i) for i in range(5)]
    edit_hr(syncd_env, **{key: {"last_name": "Renamed"} for key in renamed})
    faults = syncd_env.faults["lobby"]  # every request about a record answers 503
    faults.exempt_paths = ("/1.0/lock", "/1.0/version", "/1.0/subjects/record-version")
    faults.error_rate = 1.0
    _, result, _ = apply(syncd_env)
    assert "in a row failed with temporary errors" in result.errors["lobby"]
    assert result.per_target["lobby"]["failed"] == 5 and "lab" not in result.errors
    assert quarantined(syncd_env)["lobby"] == (1, False)
    faults.error_rate = 0.0
    syncd_env.terminals["lobby"].refused_writes[renamed[0]] = 503
    _, result, _ = apply(syncd_env)
    assert result.per_target["lobby"] == {"applied": 4, "failed": 1}
    assert result.temporary["lobby"] == 1 and not result.errors
    assert quarantined(syncd_env)["lobby"] == (0, False)


# -- card moves ----------------------------------------------------------------------------


def test_a_badge_swap_converges_in_one_run(syncd_env: SyncdEnv) -> None:
    apply(syncd_env)
    rows = read_people_csv(syncd_env.csv_path)
    ann, bob = rows[4], rows[5]
    edit_hr(
        syncd_env,
        **{
            ann["employee_id"]: {"badge_number": bob["badge_number"]},
            bob["employee_id"]: {"badge_number": ann["badge_number"]},
        },
    )
    plan, result, after = apply(syncd_env)
    assert result.count("failed") == 0 and not result.errors
    assert after.in_step
    for name, state in syncd_env.terminals.items():
        assert card_of(state, ann["employee_id"]) == card_hex(int(bob["badge_number"])), name
        assert card_of(state, bob["employee_id"]) == card_hex(int(ann["badge_number"])), name
        moves = [(a.person_key, a.record["card"]) for a in plan.for_target(name)]
        assert moves[0] == (ann["employee_id"], "")  # one card cleared first
        assert len(moves) == 3


@pytest.mark.parametrize("same_run", [False, True], ids=["left-earlier", "left-same-run"])
def test_a_leavers_badge_reissued_to_a_new_hire_converges_in_one_run(
    syncd_env: SyncdEnv, same_run: bool
) -> None:
    apply(syncd_env)
    rows = read_people_csv(syncd_env.csv_path)
    leaver, badge = key_of(rows, 6), int(rows[6]["badge_number"])
    edit_hr(syncd_env, **{leaver: {"status": "terminated"}})
    if not same_run:
        apply(syncd_env)
        for state in syncd_env.terminals.values():  # disabled, and still holding the card
            assert state.subjects[leaver]["access_allowed"] is False
            assert card_of(state, leaver) == card_hex(badge)
    add_people(syncd_env, person("E900001", badge))
    plan, result, after = apply(syncd_env)
    assert result.count("failed") == 0 and not result.errors
    assert after.in_step
    for name, state in syncd_env.terminals.items():
        assert state.subjects[leaver]["access_allowed"] is False, name
        assert card_of(state, leaver) == "", name
        assert state.subjects["E900001"]["access_allowed"] is True, name
        assert card_of(state, "E900001") == card_hex(badge), name
        order = [a.person_key for a in plan.for_target(name)]
        assert order.index(leaver) < order.index("E900001"), name
    if not same_run:
        assert any("card cleared for E900001" in note for note in plan.notes)


# -- keys ----------------------------------------------------------------------------------


def test_keys_with_reserved_characters_reach_every_target(syncd_clue_env: ClueEnv) -> None:
    env, clue = syncd_clue_env.env, syncd_clue_env.state
    add_people(env, *(person(key, 8_000_000 + i) for i, key in enumerate(KEYS)))
    steps = [
        ("created", {}),
        ("updated", {"last_name": "Renamed"}),
        ("disabled", {"status": "terminated"}),
    ]
    for step, fields in steps:
        edit_hr(env, **{key: fields for key in KEYS})
        _, result, after = apply(env, allow_deletes=len(KEYS))  # over the share cap
        assert result.count("failed") == 0 and not result.errors, (step, result.errors)
        assert after.in_step, step
        for key in KEYS:
            for name, state in env.terminals.items():
                subject = state.subjects[key]
                assert subject["last_name"] == ("Hall" if step == "created" else "Renamed")
                assert subject["access_allowed"] is (step != "disabled"), (step, name, key)
            auth = clue.auth_by_key(key)
            assert auth is not None, (step, key)
            assert auth.name.endswith("Hall" if step == "created" else "Renamed")
            assert auth.active is (step != "disabled"), (step, key)
    assert CLUE_TARGET in load_config(env.config_path).targets


@pytest.mark.parametrize("ef45_firmware", ["new", "old"])
async def test_the_emulator_routes_a_key_by_its_encoded_segment(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    key = "a/b?c%d é"
    async with Ef45Client(base_url=ef45_server.url, timeout_s=2.0) as ef45:
        await ef45.create_user({"user_uuid": key, "last_name": "Doe"}, {"card": "0A"})
        user = await ef45.get_user(key)
        assert user is not None and user.subject["user_uuid"] == key
        await ef45.update_user({"user_uuid": key, "last_name": "Roe"}, None)
        lock = ef45_state.lock_uid
    assert ef45_state.subjects[key]["last_name"] == "Roe"
    ef45_state.lock_uid = lock  # a request the way a device would see it, unencoded
    async with httpx.AsyncClient(base_url=ef45_server.url) as raw:
        unencoded = await raw.get("/1.0/subjects/a/b", params={"lock_uid": lock or ""})
        encoded = await raw.get("/1.0/subjects/a%2Fb%3Fc%25d%20%C3%A9", params={"lock_uid": lock})
    assert unencoded.status_code == 404 and unencoded.content in (b"", b"Not Found")
    assert encoded.status_code == 200 and encoded.json()["user_uuid"] == key
