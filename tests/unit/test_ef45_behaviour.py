"""The emulated EF-45's behaviour profiles, and the client's wire forms that depend on them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.config import Ef45TargetConfig
from syncd.emulators.ef45_behaviour import EF45_PROFILES, IMAGE_DIR, Ef45Behaviour, profile
from syncd.emulators.ef45_rules import DeviceError
from syncd.emulators.ef45_state import Ef45State
from syncd.model import Person
from syncd.targets.ef45.errors import DeviceFull, Ef45Rejected, error_for
from syncd.targets.ef45.observe import normal_card, observed_record, observed_templates
from syncd.targets.ef45.target import Ef45Target
from syncd.targets.ef45.wire import card_hex, wire_subject

DEVICE, LENIENT = EF45_PROFILES["device"], EF45_PROFILES["lenient"]


def subject(uuid: str, **fields: object) -> dict[str, object]:
    return {"user_uuid": uuid, "last_name": "Doe", **fields}


def test_profiles() -> None:
    assert Ef45Behaviour() == DEVICE
    assert (DEVICE.lock_busy_status, LENIENT.lock_busy_status) == (409, 423)
    assert DEVICE.lost_lock_status == LENIENT.lost_lock_status == 403
    assert DEVICE.put_replaces and not LENIENT.put_replaces
    assert profile("lenient") is LENIENT
    with pytest.raises(ValueError, match="unknown EF-45 profile"):
        profile("firmware-9")


@pytest.mark.parametrize("behaviour", [DEVICE, LENIENT])
def test_busy_lock_status(behaviour: Ef45Behaviour) -> None:
    state = Ef45State(behaviour=behaviour)
    state.acquire_lock()
    with pytest.raises(DeviceError) as busy:
        state.acquire_lock()
    assert busy.value.status == behaviour.lock_busy_status


def test_put_replaces_or_merges() -> None:
    for behaviour, kept in ((DEVICE, ""), (LENIENT, "L")):
        state = Ef45State(behaviour=behaviour)
        state.add_subject(subject("a", first_name="Ann", left_eye_template="L"))
        state.update_subject("a", subject("a", last_name="Roe"))
        assert state.subjects["a"]["left_eye_template"] == kept
        assert state.subjects["a"]["last_name"] == "Roe"
    replaced = Ef45State()
    replaced.add_subject(subject("a", wiegand_code=7))
    replaced.update_subject("a", subject("a"))
    assert replaced.subjects["a"]["wiegand_code"] == -1
    assert replaced.subjects["a"]["first_name"] == ""


def test_user_info_put_replaces_on_the_device() -> None:
    state = Ef45State()
    state.add_user_info({"user_uuid": "a", "card": "01", "by_pass_card": 1})
    state.update_user_info("a", {"card": "02"})
    assert state.user_info["a"]["by_pass_card"] == 0 and state.user_info["a"]["card"] == "02"


def test_match_until_formats_and_wiegand_custom_echo() -> None:
    state = Ef45State()
    state.add_subject(subject("a", match_until="2026-12-31T23:59:59", wiegand_custom=12))
    assert state.subjects["a"]["wiegand_custom"] == "12"
    state.add_subject(subject("b", match_until=""))
    strict = Ef45State(behaviour=Ef45Behaviour(match_until_formats=("%Y%m%d",)))
    with pytest.raises(DeviceError) as refused:
        strict.add_subject(subject("c", match_until="2026-12-31T23:59:59"))
    assert refused.value.status == 400


def test_load_file_paths() -> None:
    device, lenient = Ef45State(), Ef45State(behaviour=LENIENT)
    for state in (device, lenient):
        state.files["a_faroff.jpg"] = b"jpeg"
        assert state.load_file(f"{IMAGE_DIR}/a_faroff.jpg") == b"jpeg"
    assert device.load_file("a_faroff.jpg") is None  # a bare name finds nothing
    assert device.load_file(f"{IMAGE_DIR}/missing.jpg") is None  # answered as file ""
    assert lenient.load_file("a_faroff.jpg") == b"jpeg"
    with pytest.raises(DeviceError) as missing:
        lenient.load_file("missing.jpg")
    assert missing.value.status == 404


def test_faces_of_a_user_without_faces_is_404() -> None:
    with pytest.raises(DeviceError) as none:
        Ef45State().faces_of("a")
    assert none.value.status == 404


def test_card_padding_and_observation() -> None:
    assert card_hex(0xABCDEF, 4) == "00 AB CD EF"
    assert card_hex(0xABCDEF) == "00 AB CD EF"  # the config's default, 4 bytes
    assert card_hex(0xABCDEF, 0) == "AB CD EF"
    assert card_hex(0x1ABCDEF00, 4) == "01 AB CD EF 00"
    assert normal_card("00 ab cd ef", 4) == "00 AB CD EF"
    assert normal_card("ABCDEF", 4) == "00 AB CD EF"
    assert normal_card("00ABCDEF") == "00 AB CD EF"
    assert normal_card("zz") == "zz" and normal_card(None) == ""


def test_wiegand_custom_goes_out_as_a_string_and_reads_back_either_way() -> None:
    assert wire_subject({"wiegand_custom": -1})["wiegand_custom"] == ""
    assert wire_subject({"wiegand_custom": 42})["wiegand_custom"] == "42"
    for echoed, seen in (("42", 42), (42, 42), ("", -1), (None, -1)):
        record = observed_record({"user_uuid": "a", "wiegand_custom": echoed}, None)
        assert record["wiegand_custom"] == seen


def test_observed_templates_as_render_writes_them() -> None:
    face = {"user_uuid": "a", "sub_id": 1, "face_feature": "F"}
    fields = observed_templates(
        {"left_eye_template": "L", "right_eye_template": "", "record_version": 8976},
        [face],
        lambda data: f"d:{len(data)}",
    )
    assert fields["left_eye_template"] == "d:1" and "right_eye_template" not in fields
    assert [f["sub_id"] for f in fields["faces"]] == [1] and fields["template_version"] == 8976
    assert observed_templates({"left_eye_template": ""}, [], str) == {}


def test_507_is_db_full_and_texts_never_decide_404() -> None:
    assert isinstance(error_for(507, "", "x"), DeviceFull)
    assert type(error_for(400, "DB is full", "x")) is Ef45Rejected  # a text never decides
    assert type(error_for(404, "", "x")) is Ef45Rejected


@pytest.mark.parametrize(
    ("fmt", "written"),
    [
        ("%Y-%m-%dT%H:%M:%S", "2027-03-31T23:59:59"),  # the default: ISO, local wall time
        ("%Y-%m-%d %H:%M:%S", "2027-03-31 23:59:59"),
        ("%Y%m%d%H%M%S", "20270331235959"),
        ("%Y-%m-%d", "2027-03-31"),
    ],
)
def test_match_until_is_written_in_the_configured_format(fmt: str, written: str) -> None:
    config = Ef45TargetConfig(
        type="ef45", url="http://127.0.0.1:1", time_zone="Europe/Berlin", match_until_format=fmt
    )
    end = datetime(2027, 3, 31, 21, 59, 59, tzinfo=UTC)  # 23:59:59 in Berlin (CEST)
    person = Person("E1", "Ann", "Lee", valid_until=end)
    assert Ef45Target("door", config).render(person, ())["match_until"] == written
