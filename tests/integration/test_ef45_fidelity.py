"""EF-45 scenarios where the device's answers matter, against both emulator behaviours.

Each scenario runs over real HTTP against terminals of both firmware generations that
answer as the "device" profile (the SDK's evidence: bare 404/409, PUT replaces, 409 for
a busy lock, full-path load-file) and as the "lenient" one (error texts, PUT merges, …),
with the ledger on SQLite and on PostgreSQL (`docs/ef45-behaviour.md`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_behaviour import EF45_PROFILES
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import read_people_csv, sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.backfill import backfill
from syncd.engine.events import collect_events
from syncd.engine.run import ApplyOptions
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine
from syncd.targets.ef45.client import Ef45Client, LockLost, UnknownUser
from tests.fixtures.ef45 import EF45_PROFILE_NAMES
from tests.fixtures.enrollments import Site, enroll, new_template, write_key

Row = dict[str, str]


@pytest.fixture(params=EF45_PROFILE_NAMES)
def ef45_profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(tmp_path: Path, ledger_url: str, ef45_profile: str) -> Iterator[Site]:
    """Terminals "new" and "old" answering as `ef45_profile`, 6 people, all applied;
    leavers are deleted at once (`delete_after_days = 0`, no removal caps)."""
    behaviour = EF45_PROFILES[ef45_profile]
    states = {
        "new": Ef45State(behaviour=behaviour),
        "old": Ef45State(firmware="old", behaviour=behaviour),
    }
    servers = [EmulatorServer(create_ef45_app(state)).start() for state in states.values()]
    try:
        urls = {n: s.url for n, s in zip(states, servers, strict=True)}
        built = Site(tmp_path, ledger_url, states, urls, write_key(tmp_path / "templates.key"))
        write_people_csv(tmp_path / "people.csv", sample_rows(6))
        write_config(built)
        db = create_ledger_engine(ledger_url)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
        built.apply()
        yield built
    finally:
        for server in servers:
            server.stop()


def write_config(site: Site) -> None:
    site.write_config()
    text = site.config_path.read_text(encoding="utf-8")
    safety = (
        "\n[safety]\ndelete_after_days = 0\nmax_deletes = 1000\nmax_delete_share = 1.0\n"
        "max_window_deletes = 100000\nmax_window_delete_share = 1.0\n"
    )
    site.config_path.write_text(text + safety, encoding="utf-8")


def edit_people(site: Site, change: Callable[[list[Row]], None]) -> None:
    path = site.workdir / "people.csv"
    rows = read_people_csv(path)
    change(rows)
    write_people_csv(path, rows)


def row_of(rows: list[Row], key: str) -> Row:
    return next(r for r in rows if r["employee_id"] == key)


def in_step(site: Site, *, deep: bool) -> bool:
    engine = site.engine()
    try:
        return engine.plan(engine.read(), deep=deep).in_step
    finally:
        engine.close()


def apply(site: Site, *, deep: bool = False) -> None:
    engine = site.engine()
    try:
        _, result, _ = engine.apply(ApplyOptions(wait_lock_s=30, deep=deep))
    finally:
        engine.close()
    assert result.count("failed") == 0, result.errors


def forget(state: Ef45State, key: str) -> None:
    """Delete user `key` at the terminal by hand."""
    with state.mutex:
        state.subjects.pop(key)
        state.user_info.pop(key, None)
        state.faces.pop(key, None)


# -- convergence -------------------------------------------------------------------


def test_deep_apply_converges_with_templates(site: Site) -> None:
    key = site.people[0]
    left, right = new_template(), new_template()
    enroll(site.terminals["new"], key, left=left, right=right, face="RkFDRQ==")
    engine = site.engine()
    try:
        assert not backfill(engine).errors
    finally:
        engine.close()
    apply(site)  # fans the templates out to "old"
    assert site.terminals["old"].subjects[key]["left_eye_template"] == left
    assert in_step(site, deep=False)
    apply(site, deep=True)
    assert in_step(site, deep=True)  # the terminals' templates are what the ledger holds
    apply(site, deep=True)
    for state in site.terminals.values():
        assert state.subjects[key]["right_eye_template"] == right
        assert state.faces[key][0]["face_feature"] == "RkFDRQ=="


def test_templates_enrolled_at_the_terminal_are_no_deep_difference(site: Site) -> None:
    key = site.people[1]
    enroll(site.terminals["old"], key, left=new_template(), right=new_template())
    assert in_step(site, deep=True)  # not back-filled yet: kept, not "altered"


# -- whole-record writes -------------------------------------------------------------


def test_rename_before_backfill_keeps_the_irises_enrolled_at_the_terminal(site: Site) -> None:
    key = site.people[2]
    eyes = {state: (new_template(), new_template()) for state in site.terminals}
    for name, state in site.terminals.items():
        enroll(state, key, left=eyes[name][0], right=eyes[name][1])
        state.subjects[key]["left_image_path"] = f"/images/{key}_left.jpg"

    def rename(rows: list[Row]) -> None:
        row_of(rows, key)["last_name"] = "Renamed"
        row_of(rows, key)["badge_number"] = "11"

    edit_people(site, rename)
    apply(site)
    for name, state in site.terminals.items():
        subject = state.subjects[key]
        assert subject["last_name"] == "Renamed"
        assert (subject["left_eye_template"], subject["right_eye_template"]) == eyes[name]
        assert subject["left_image_path"] == f"/images/{key}_left.jpg"
        assert state.user_info[key]["card"] == "00 00 00 0B"
    assert in_step(site, deep=True)


def test_crash_recovery_user_already_on_the_terminal(site: Site) -> None:
    hired = "HIRE-0001"

    def hire(rows: list[Row]) -> None:
        rows.append({**rows[0], "employee_id": hired, "last_name": "Haddad", "badge_number": ""})

    edit_people(site, hire)
    left = new_template()
    for state in site.terminals.values():  # created there by a run whose commit was lost
        state.add_subject({"user_uuid": hired, "last_name": "Half-written"})
        state.add_user_info({"user_uuid": hired, "card": ""})
        enroll(state, hired, left=left, right="")
    apply(site)
    for state in site.terminals.values():
        assert state.subjects[hired]["last_name"] == "Haddad"
        assert state.subjects[hired]["left_eye_template"] == left
    assert in_step(site, deep=False) and in_step(site, deep=True)


# -- idempotence against the device's answers ----------------------------------------


def test_hand_deleted_user_is_created_again(site: Site) -> None:
    renamed, recarded = site.people[3], site.people[4]
    for state in site.terminals.values():
        forget(state, renamed)
        forget(state, recarded)

    def change(rows: list[Row]) -> None:
        row_of(rows, renamed)["first_name"] = "Back"
        row_of(rows, recarded)["badge_number"] = "4242"  # a user-info-only change

    edit_people(site, change)
    apply(site)
    for state in site.terminals.values():
        assert state.subjects[renamed]["first_name"] == "Back"
        assert recarded in state.subjects
        assert state.user_info[recarded]["card"] == "00 00 10 92"
    assert in_step(site, deep=True)


def test_leaver_already_gone_is_done(site: Site) -> None:
    leaver = site.people[5]
    for state in site.terminals.values():
        forget(state, leaver)
    edit_people(site, lambda rows: row_of(rows, leaver).update(status="terminated"))
    for _ in range(3):  # disable, then delete once the grace period is over: never fails
        apply(site)
    for state in site.terminals.values():
        assert leaver not in state.subjects
    assert in_step(site, deep=False)


def test_leaver_deleted_on_old_firmware_without_faces(site: Site) -> None:
    leaver = site.people[0]
    assert leaver not in site.terminals["old"].faces
    edit_people(site, lambda rows: row_of(rows, leaver).update(status="terminated"))
    for _ in range(3):
        apply(site)
    for state in site.terminals.values():
        assert leaver not in state.subjects and leaver not in state.user_info
    assert in_step(site, deep=False)


def test_collect_with_no_new_logs(site: Site) -> None:
    engine = site.engine()
    try:
        first = collect_events(engine)
        again = collect_events(engine)  # empty range: the device answers 404
    finally:
        engine.close()
    assert not first.failed and not again.failed, str(again)
    assert all(r.stored == 0 for r in again.results)


# -- the client alone, both firmwares --------------------------------------------------


@pytest.mark.parametrize("firmware", ["new", "old"])
async def test_client_is_idempotent_against_either_outcome(
    ef45_profile: str, firmware: str
) -> None:
    state = Ef45State(firmware=firmware, behaviour=EF45_PROFILES[ef45_profile])
    with EmulatorServer(create_ef45_app(state)) as server:
        async with Ef45Client(base_url=server.url) as ef45:
            with pytest.raises(UnknownUser):
                await ef45.delete_user("nobody")  # absent: the target counts it done
            await ef45.create_user({"user_uuid": "a", "last_name": "A"}, {"card": "01"})
            await ef45.delete_user("a")  # no faces: GET /faces answers 404
            assert [e async for e in ef45.iter_logs_between(900, 999)] == []
            await ef45.delete_logs_between(900, 999)
            with pytest.raises(UnknownUser):
                await ef45.update_user(None, {"user_uuid": "a", "card": "02"})
    assert "a" not in state.subjects and "a" not in state.user_info


@pytest.mark.parametrize("firmware", ["new", "old"])
async def test_a_404_for_a_forgotten_lock_never_counts_a_user_absent(
    ef45_profile: str, firmware: str
) -> None:
    """A terminal that answers a forgotten lock with 404 (plausible: the status is
    unverified) must not make a leaver's delete or disable count as done: the lock is
    confirmed before a 404 counts, and retaken when it is gone."""
    behaviour = replace(EF45_PROFILES[ef45_profile], lost_lock_status=404)
    state = Ef45State(firmware=firmware, behaviour=behaviour)
    with EmulatorServer(create_ef45_app(state)) as server:
        async with Ef45Client(base_url=server.url) as ef45:
            await ef45.create_user({"user_uuid": "a", "last_name": "A"}, {"card": "01"})
            await ef45.create_user({"user_uuid": "b", "last_name": "B"}, {"card": "02"})
            state.lock_uid = None  # the device forgets the lock
            disabled = {"user_uuid": "a", "last_name": "A", "access_allowed": False}
            await ef45.update_user(disabled, None)
            assert state.subjects["a"]["access_allowed"] is False
            state.lock_uid = None
            await ef45.delete_user("a")
            assert "a" not in state.subjects and "a" not in state.user_info
            state.lock_uid = None
            state.lock_held_by_other = True  # forgotten, and taken by someone else
            with pytest.raises(LockLost):
                await ef45.delete_user("b")  # never UnknownUser: b is still there
            assert "b" in state.subjects


def test_device_time_stamps_the_logs(ef45_profile: str) -> None:
    state = Ef45State(behaviour=EF45_PROFILES[ef45_profile])
    before = state.append_log("UserData", "a", "AddUser")
    assert before["timestamp"].endswith("Z")
    state.set_device_time("070112302026.15")
    stamped: Any = state.append_log("UserData", "a", "AddUser")["timestamp"]
    assert stamped.startswith("2026-07-01T12:30") and not stamped.endswith("Z")
