"""EF-45 logs and CLUe events → AccessEvent (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from syncd.targets.clue.events import clue_event, clue_result
from syncd.targets.ef45.events import ef45_event, ef45_result

NOW = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_ef45_recognition_log() -> None:
    entry = {
        "id": 68,
        "event_type": "Recognition",
        "timestamp": "2018-05-28T14:26:26Z",
        "user_uuid": "E000001",
        "info": "Recog/BioOnly/IrisOk",
        "additional_data": "Allowed",
        "matched_faceimage_data": "/9j/AAAA",
    }
    event = ef45_event("lobby", entry, BERLIN, NOW)
    assert (event.target, event.remote_id, event.person_key) == ("lobby", "68", "E000001")
    assert event.occurred_at == datetime(2018, 5, 28, 14, 26, 26, tzinfo=UTC)
    assert (event.event_type, event.result) == ("Recognition", "allowed")
    assert event.detail == "Recog/BioOnly/IrisOk / Allowed"
    assert "/9j/" not in repr(event)


def test_ef45_local_and_unreadable_timestamps() -> None:
    local = ef45_event("lobby", {"id": 1, "timestamp": "2024-01-15T10:00:00"}, BERLIN, NOW)
    assert local.occurred_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    broken = ef45_event("lobby", {"id": 2, "timestamp": "yesterday"}, BERLIN, NOW)
    assert broken.occurred_at == NOW and broken.person_key is None


@pytest.mark.parametrize(
    ("event_type", "data", "result"),
    [
        ("Recognition", "Allowed", "allowed"),
        ("Recognition", "Denied", "denied"),
        ("Recognition", "Rejected: expired", "denied"),
        ("Recognition", "", None),
        ("UserData", "Success", None),
    ],
)
def test_ef45_result(event_type: str, data: str, result: str | None) -> None:
    assert ef45_result(event_type, data) == result


def test_clue_event_person_from_auth_id_then_user_id() -> None:
    raw = {
        "logId": "WzIAM5ABcB2c2xupDI6m",
        "eventAt": 1718842553904,
        "placeId": 448,
        "authId": 107909,
        "deviceId": 1343,
        "doorId": 645,
        "doorName": "SupremaJP_In",
        "userId": "c2119100-fbb0-1fdf-82c6-7dba89b5fe29",
        "userName": "jinlee",
        "localLogId": 25278,
        "eventType": "DEV_FACE_AUTH_SUCCESS",
    }
    known = clue_event("cloud", raw, {"107909": "E000007"}, NOW)
    assert known.person_key == "E000007"
    assert known.occurred_at == datetime(2024, 6, 20, 0, 15, 53, 904000, tzinfo=UTC)
    assert (known.remote_id, known.result) == ("WzIAM5ABcB2c2xupDI6m", "allowed")
    assert known.detail == "door 645 (SupremaJP_In), device 1343"
    unknown = clue_event("cloud", raw, {}, NOW)
    assert unknown.person_key == "c2119100-fbb0-1fdf-82c6-7dba89b5fe29"
    relay = clue_event(
        "cloud", {"logId": "x", "eventAt": 1, "eventType": "DEV_DOOR_RELAY_ON"}, {}, NOW
    )
    assert (relay.person_key, relay.result) == (None, None)


def test_clue_event_without_log_id_uses_the_device_ids() -> None:
    raw = {"eventAt": 5, "deviceId": 3, "localLogId": 9, "eventType": "X"}
    assert clue_event("cloud", raw, {}, NOW).remote_id == "device:3:9:5"


@pytest.mark.parametrize(
    ("event_type", "result"),
    [
        ("DEV_FACE_AUTH_SUCCESS", "allowed"),
        ("VENDOR_AUTH_SUCCESS", "allowed"),
        ("DEV_FACE_AUTH_FAIL", "denied"),
        ("DEV_DOOR_RELAY_OFF", None),
        ("AUTH_CREATED", None),
    ],
)
def test_clue_result(event_type: str, result: str | None) -> None:
    assert clue_result(event_type) == result
