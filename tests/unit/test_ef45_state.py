"""The emulated EF-45's rules, without HTTP: lock, records, batch, logs, paging."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.emulators.ef45 import build_ef45_emulators
from syncd.emulators.ef45_behaviour import EF45_PROFILES
from syncd.emulators.ef45_rules import DB_FULL, LOCK_BUSY, DeviceError, paginate
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.ef45_table import UserInfoTable


def subject(uuid: str, **fields: object) -> dict[str, object]:
    return {"user_uuid": uuid, "last_name": "Doe", **fields}


def status_of(error: pytest.ExceptionInfo[DeviceError]) -> int:
    return error.value.status


# -- lock ----------------------------------------------------------------------------


def test_lock_is_exclusive_until_released() -> None:
    state = Ef45State()
    uid = state.acquire_lock()
    with pytest.raises(DeviceError) as busy:
        state.acquire_lock()
    assert status_of(busy) == LOCK_BUSY
    state.release_lock(uid)
    assert state.lock_uid is None
    assert state.acquire_lock() != uid


def test_release_by_an_unknown_uid_is_refused() -> None:
    state = Ef45State()
    uid = state.acquire_lock()
    with pytest.raises(DeviceError) as refused:
        state.release_lock("00000000-0000-0000-0000-000000000000")
    assert 400 <= status_of(refused) < 500
    assert state.lock_uid == uid


def test_steal_replaces_the_holder() -> None:
    state = Ef45State()
    first = state.acquire_lock()
    second = state.steal_lock()
    assert second != first and state.lock_uid == second
    with pytest.raises(DeviceError) as forbidden:
        state.check_lock(first)
    assert status_of(forbidden) == 403


def test_check_lock_needs_the_holder() -> None:
    state = Ef45State()
    with pytest.raises(DeviceError):
        state.check_lock(None)
    uid = state.acquire_lock()
    state.check_lock(uid)
    assert state.locked_requests == 1


def test_lock_held_by_other_refuses_post_but_not_steal() -> None:
    state = Ef45State(lock_held_by_other=True)
    with pytest.raises(DeviceError) as busy:
        state.acquire_lock()
    assert status_of(busy) == LOCK_BUSY
    uid = state.steal_lock()
    state.check_lock(uid)


def test_drop_lock_after_forgets_the_lock_after_n_requests() -> None:
    state = Ef45State(drop_lock_after=2)
    uid = state.acquire_lock()
    state.check_lock(uid)
    state.check_lock(uid)
    assert state.lock_uid is None
    with pytest.raises(DeviceError):
        state.check_lock(uid)
    again = state.acquire_lock()
    state.check_lock(again)


# -- subjects, user info, faces ------------------------------------------------------


def test_subject_needs_a_last_name_and_a_uuid() -> None:
    state = Ef45State()
    for body in ({"user_uuid": "a", "last_name": " "}, {"user_uuid": "a"}, {"last_name": "X"}):
        with pytest.raises(DeviceError) as bad:
            state.add_subject(body)
        assert status_of(bad) == 400
    assert state.subjects == {}


def test_subject_duplicate_and_unknown() -> None:
    state = Ef45State()
    state.add_subject(subject("a"))
    assert state.subjects["a"]["record_version"] == 8976
    with pytest.raises(DeviceError, match="already exists"):
        state.add_subject(subject("a"))
    with pytest.raises(DeviceError, match="does not exist") as unknown:
        state.get_subject("b")
    assert status_of(unknown) == 404


def test_capacity_answers_db_is_full() -> None:
    state = Ef45State(capacity=1)
    state.add_subject(subject("a"))
    with pytest.raises(DeviceError, match="DB is full") as full:
        state.add_subject(subject("b"))
    assert status_of(full) == DB_FULL
    with pytest.raises(DeviceError, match="DB is full"):
        state.add_user(subject("c"))


def test_subject_update_merges_and_keeps_the_path_uuid() -> None:
    state = Ef45State(behaviour=EF45_PROFILES["lenient"])
    state.add_subject(subject("a", first_name="Ann"))
    state.update_subject("a", {"user_uuid": "zzz", "last_name": "Roe"})
    assert state.subjects["a"] == {
        "user_uuid": "a", "last_name": "Roe", "first_name": "Ann", "record_version": 8976,
    }  # fmt: skip
    with pytest.raises(DeviceError):
        state.update_subject("a", {"last_name": ""})
    state.delete_subject("a")
    assert "a" not in state.subjects


def test_user_info_card_is_unique_and_well_formed() -> None:
    state = Ef45State()
    state.add_user_info({"user_uuid": "a", "card": "65 D8 A1 BD"})
    with pytest.raises(DeviceError, match="UserInfo card 65 d8 a1 bd already exists"):
        state.add_user_info({"user_uuid": "b", "card": "65 d8 a1 bd"})
    with pytest.raises(DeviceError) as bad:
        state.add_user_info({"user_uuid": "b", "card": "12345"})
    assert status_of(bad) == 400
    state.add_user_info({"user_uuid": "b", "card": "01 02"})
    with pytest.raises(DeviceError, match="already exists"):
        state.update_user_info("b", {"card": "65 D8 A1 BD"})
    with pytest.raises(DeviceError, match="UserInfo uuid c does not exist"):
        state.get_user_info("c")
    assert state.user_info_by_card("01 02")["user_uuid"] == "b"


def test_faces_by_sub_id() -> None:
    state = Ef45State()
    state.add_face({"user_uuid": "a", "sub_id": 0, "face_feature": "f0"})
    state.add_face({"user_uuid": "a", "sub_id": 1})
    with pytest.raises(DeviceError, match="already exists"):
        state.add_face({"user_uuid": "a", "sub_id": 1})
    with pytest.raises(DeviceError):
        state.add_face({"user_uuid": "a", "sub_id": 9})
    state.update_face("a", 0, {"face_feature": "g0", "sub_id": 5})
    assert state.faces_of("a", 0) == [{"user_uuid": "a", "sub_id": 0, "face_feature": "g0"}]
    state.delete_face("a", 0)
    state.delete_face("a", 1)
    assert state.faces == {}
    with pytest.raises(DeviceError) as none:  # no faces: 404, as the device answers
        state.faces_of("a")
    assert status_of(none) == 404
    with pytest.raises(DeviceError, match="does not exist"):
        state.delete_face("a", 1)


def test_find_template() -> None:
    state = Ef45State()
    state.add_subject(subject("a", left_eye_template="L1", right_eye_template="R1"))
    assert state.find_template("L1", "") == "a"
    assert state.find_template("", "R1") == "a"
    assert state.find_template("", "") == ""
    assert state.find_template("L2", "R2") == ""


# -- batch ---------------------------------------------------------------------------


def test_add_user_splits_fields_and_writes_all_or_nothing() -> None:
    state = Ef45State()
    state.add_user({**subject("a"), "card": "01", "pin": "1234", "faces": [{"sub_id": 1}]})
    assert state.subjects["a"] == {"user_uuid": "a", "last_name": "Doe", "record_version": 8976}
    assert state.user_info["a"] == {"user_uuid": "a", "card": "01", "pin": "1234"}
    assert state.faces["a"] == {1: {"user_uuid": "a", "sub_id": 1}}
    with pytest.raises(DeviceError, match="UserInfo card 01 already exists"):
        state.add_user({**subject("b"), "card": "01"})
    with pytest.raises(DeviceError):
        state.add_user({**subject("c"), "faces": [{"sub_id": 1}, {"sub_id": 1}]})
    assert list(state.subjects) == ["a"]
    with pytest.raises(DeviceError, match="already exists") as exists:
        state.add_user(subject("a"))
    assert status_of(exists) == 409


def test_delete_user_removes_every_part() -> None:
    state = Ef45State()
    state.add_user({**subject("a"), "card": "01", "faces": [{"sub_id": 0}]})
    state.delete_user("a")
    assert (state.subjects, state.user_info, state.faces) == ({}, {}, {})
    with pytest.raises(DeviceError, match="does not exist") as unknown:
        state.delete_user("a")
    assert status_of(unknown) == 404


# -- logs, paging, device ------------------------------------------------------------


def test_user_changes_are_logged() -> None:
    state = Ef45State(clock=lambda: datetime(2018, 5, 28, 14, 26, 26))
    state.add_subject(subject("a"))
    state.update_subject("a", subject("a", first_name="Ann"))
    state.delete_subject("a")
    assert [(e["id"], e["info"]) for e in state.logs.values()] == [
        (1, "AddUser"), (2, "UpdateUser"), (3, "DeleteUsers"),
    ]  # fmt: skip
    assert state.logs[1]["event_type"] == "UserData"
    assert state.logs[1]["timestamp"] == "2018-05-28T14:26:26Z"
    assert [e["id"] for e in state.logs_between(2, 9)] == [2, 3]
    with pytest.raises(DeviceError, match="within range 7-9 do not exist"):
        state.logs_between(7, 9)
    state.delete_logs([1, 2])
    assert list(state.logs) == [3]


def test_paginate() -> None:
    items = [{"n": n} for n in range(5)]
    first = paginate(items, 1, 2)
    assert (first.items, first.total, first.has_more) == ([{"n": 0}, {"n": 1}], 5, True)
    last = paginate(items, 3, 2)
    assert (last.items, last.has_more) == ([{"n": 4}], False)
    assert paginate(items, None, 2).items == items
    assert paginate(items, 9, 2).items == []
    with pytest.raises(DeviceError):
        paginate(items, 0, 2)


def test_device_time_and_versions() -> None:
    state = Ef45State(firmware="old")
    assert (state.app_version, state.has_batch) == ("1.2.20", False)
    assert Ef45State().app_version == "1.3.2"
    assert state.set_device_time("052014402018.30") == datetime(2018, 5, 20, 14, 40, 30)
    with pytest.raises(DeviceError):
        state.set_device_time("2018-05-20")
    with pytest.raises(ValueError, match="firmware"):
        Ef45State(firmware="future")


def test_build_emulators_gives_each_terminal_its_own_state() -> None:
    terminals = build_ef45_emulators(count=3, base_port=9980, firmware="old", capacity=5)
    assert [port for _, _, port in terminals] == [9980, 9981, 9982]
    states = [state for state, _, _ in terminals]
    assert len({id(s) for s in states}) == 3
    assert all(s.capacity == 5 and s.firmware == "old" for s in states)


# -- the card index of the user-info table ---------------------------------------------

_uuids = st.sampled_from(["u1", "u2", "u3", "u4"])
_cards = st.sampled_from(["", "0A 0B", "0a 0b", "FF 01", "12 34"])
_writes = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _uuids, _cards),
        st.tuples(st.just("del"), _uuids, _cards),
        st.tuples(st.just("pop"), _uuids, _cards),
        st.tuples(st.just("update"), _uuids, _cards),
    ),
    max_size=30,
)


@given(_writes)
def test_card_index_always_equals_a_scan_of_the_records(writes: list[tuple[str, str, str]]) -> None:
    table = UserInfoTable()
    for op, uuid, card in writes:
        record = {"user_uuid": uuid, "card": card}
        if op == "set":
            table[uuid] = record
        elif op == "update":
            table.update({uuid: record})
        elif op == "pop":
            table.pop(uuid, None)
        elif uuid in table:
            del table[uuid]
    for card in ["0A 0B", "FF 01", "12 34", "ff 01"]:
        scanned = {u for u, r in table.items() if str(r.get("card") or "").upper() == card.upper()}
        assert table.owners(card) == scanned, card


def test_a_card_freed_by_a_change_can_be_given_to_another_user() -> None:
    state = Ef45State()
    state.add_user_info({"user_uuid": "a", "card": "0A 0B"})
    with pytest.raises(DeviceError) as refused:
        state.add_user_info({"user_uuid": "b", "card": "0a 0b"})
    assert refused.value.status == 409
    state.update_user_info("a", {"card": "FF 01"})
    state.add_user_info({"user_uuid": "b", "card": "0A 0B"})
    assert state.user_info_by_card("0a 0b")["user_uuid"] == "b"
