"""ClueTarget.render and auth_body: time windows, zones, DST, status, doors, secrets (pure)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from syncd.config import ClueTargetConfig, SecretRef
from syncd.emulators import clue_validate
from syncd.engine.plan import Policy, compute_plan
from syncd.errors import PermanentTargetError, RecordError
from syncd.model import Desired, Enrollment, HeldRecord, Person, RecordState, Status, digest
from syncd.targets.clue.target import FACE_MODALITY, ClueTarget, auth_body, epoch_ms

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def target(**settings: Any) -> ClueTarget:
    config = ClueTargetConfig(
        type="clue", place_id=178, api_key=SecretRef(env="CLUE_KEY"), **settings
    )
    return ClueTarget("cloud", config)


def person(**fields: Any) -> Person:
    values: dict[str, Any] = {"key": "E1", "first_name": "Ada", "last_name": "Lovelace"}
    return Person(**(values | fields))


def ms(*parts: int, tz: ZoneInfo | Any = UTC) -> int:
    return epoch_ms(datetime(*parts, tzinfo=tz))  # type: ignore[misc]


def test_epoch_ms_is_exact() -> None:
    assert epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_ms(datetime(2024, 6, 19, 15, 0, 0, 123999, tzinfo=UTC)) == 1_718_809_200_123


def test_window_from_validity() -> None:
    start = datetime(2024, 6, 19, 17, 0, tzinfo=BERLIN)
    end = datetime(2024, 6, 20, 16, 59, tzinfo=BERLIN)
    record = target().render(person(valid_from=start, valid_until=end), ())
    assert record["startTime"] == 1_718_809_200_000  # the guide's sample start
    assert record["endTime"] == epoch_ms(end)


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        # Europe/Berlin springs forward on 2024-03-31 at 02:00 (+01:00 → +02:00).
        (datetime(2024, 3, 31, 1, 59, tzinfo=BERLIN), datetime(2024, 3, 31, 0, 59, tzinfo=UTC)),
        (datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN), datetime(2024, 3, 31, 1, 0, tzinfo=UTC)),
        # … and falls back on 2024-10-27 at 03:00: 02:30 happens twice (fold 0, fold 1).
        (
            datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN),
            datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
        ),
        (
            datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN),
            datetime(2024, 10, 27, 1, 30, tzinfo=UTC),
        ),
        # America/New_York moves on other days than Europe.
        (datetime(2024, 3, 10, 3, 0, tzinfo=NEW_YORK), datetime(2024, 3, 10, 7, 0, tzinfo=UTC)),
    ],
)
def test_dst_edges_map_to_the_right_instant(local: datetime, utc: datetime) -> None:
    record = target().render(person(valid_from=local), ())
    assert record["startTime"] == epoch_ms(utc)


def test_a_day_across_spring_forward_is_23_hours() -> None:
    start = datetime(2024, 3, 31, 0, 0, tzinfo=BERLIN)
    end = datetime(2024, 4, 1, 0, 0, tzinfo=BERLIN)
    record = target().render(person(valid_from=start, valid_until=end), ())
    assert record["endTime"] - record["startTime"] == 23 * 3600 * 1000


def test_open_end_is_far_future_in_the_target_zone() -> None:
    berlin = target(time_zone="Europe/Berlin").render(person(), ())
    assert berlin["endTime"] == ms(2099, 12, 31, 22, 59, 59)  # winter: +01:00
    summer = target(time_zone="America/New_York", far_future="2099-07-01T00:00:00")
    assert summer.render(person(), ())["endTime"] == ms(2099, 7, 1, 4, 0, 0)  # EDT: -04:00
    explicit = target(time_zone="Asia/Tokyo", far_future="2099-01-01T00:00:00+00:00")
    assert explicit.render(person(), ())["endTime"] == ms(2099, 1, 1)


def test_open_start_is_fixed_in_the_target_zone() -> None:
    record = target(time_zone="Asia/Tokyo").render(person(), ())
    assert record["startTime"] == ms(1999, 12, 31, 15, 0, 0)  # 2000-01-01 00:00 +09:00


@pytest.mark.parametrize("now", ["2001-01-01T00:00:00Z", "2024-06-01T12:00:00Z", "2098-12-31"])
def test_render_does_not_depend_on_now(now: str) -> None:
    people = [
        person(),  # open-ended both ways
        person(valid_until=datetime(2020, 1, 1, tzinfo=UTC)),  # already expired
        person(valid_from=datetime(2090, 1, 1, tzinfo=UTC)),  # starts in the future
    ]
    baseline = [digest(target().render(p, ())) for p in people]
    with freeze_time(now):
        assert [digest(target().render(p, ())) for p in people] == baseline


def test_expired_and_future_windows_are_pushed_as_they_are() -> None:
    expired = person(
        valid_from=datetime(2019, 1, 1, tzinfo=UTC), valid_until=datetime(2020, 1, 1, tzinfo=UTC)
    )
    record = target().render(expired, ())
    assert (record["startTime"], record["endTime"]) == (ms(2019, 1, 1), ms(2020, 1, 1))
    assert record["activeStatus"] == "ACTIVE"  # CLUe itself enforces the window
    future = target().render(person(valid_from=datetime(2090, 1, 1, tzinfo=UTC)), ())
    assert future["startTime"] == ms(2090, 1, 1)


@freeze_time("2024-06-01T12:00:00Z")
def test_end_before_start_is_a_record_error_naming_the_field() -> None:
    bad = person(
        valid_from=datetime(2024, 6, 2, tzinfo=UTC), valid_until=datetime(2024, 6, 1, tzinfo=UTC)
    )
    with pytest.raises(RecordError) as caught:
        target().render(bad, ())
    assert caught.value.field == "valid_until"
    # A disabled person always renders: a leaver must always be switched off.
    disabled = target().render(dataclasses.replace(bad, status=Status.DISABLED), ())
    assert disabled["activeStatus"] == "INACTIVE"
    assert disabled["endTime"] > disabled["startTime"]


def test_status_doors_schedule_cards_pin() -> None:
    clue = target(doors={"lab": (235, 234), "lobby": (234,)}, schedule_id=333, card_format="CSN")
    record = clue.render(
        person(groups=frozenset({"lab", "lobby"}), cards=(12345, 7), pin="0042"), ()
    )
    assert record["activeStatus"] == "ACTIVE"
    assert (record["doorAccessType"], record["doorIds"]) == ("SPECIFIC", [234, 235])
    assert (record["scheduleType"], record["scheduleId"]) == ("SPECIFIC", 333)
    assert record["cards"] == [
        {"cardNumber": "12345", "formatType": "CSN"},
        {"cardNumber": "7", "formatType": "CSN"},
    ]
    assert record["pin"] == "0042"
    plain = target().render(person(status=Status.DISABLED), ())
    assert (plain["activeStatus"], plain["doorAccessType"], plain["scheduleType"]) == (
        "INACTIVE",
        "ALL_DOOR",
        "ALWAYS",
    )


def test_no_mapped_door_is_a_record_error() -> None:
    clue = target(doors={"lab": (234,)})
    with pytest.raises(RecordError) as caught:
        clue.render(person(groups=frozenset({"sales"})), ())
    assert caught.value.field == "groups"
    gone = clue.render(person(groups=frozenset({"sales"}), status=Status.DISABLED), ())
    assert gone["doorIds"] == [234] and gone["activeStatus"] == "INACTIVE"


def test_a_pin_that_is_not_digits_is_refused_without_showing_it() -> None:
    with pytest.raises(RecordError) as caught:
        target().render(person(pin="12a4"), ())
    assert "12a4" not in str(caught.value)


def test_record_is_canonical_json_with_faces_by_digest() -> None:
    face = Enrollment("E1", FACE_MODALITY, "f" * 64, 1, "lobby", datetime(2024, 1, 1, tzinfo=UTC))
    iris = Enrollment("E1", "iris_left", "a" * 64, 8976, "lobby", datetime(2024, 1, 1, tzinfo=UTC))
    clue = target()
    record = clue.render(person(), (iris, face))
    assert record["faceImages"] == ["f" * 64]
    assert json.loads(json.dumps(record)) == record
    assert {"pin", "faceImages"} <= clue.secret_fields


def test_auth_body_has_the_guides_shape_and_passes_validation() -> None:
    clue = target(doors={"lab": (234,)}, schedule_id=333)
    record = clue.render(person(groups=frozenset({"lab"}), cards=(12345,), pin="1234"), ())
    body = asyncio.run(auth_body(record, None))
    assert body["user"] == {"key": "E1", "name": "Ada Lovelace"}
    auth = body["auth"]
    assert auth["doorIds"] == [234] and auth["scheduleId"] == 333
    assert auth["credentials"] == {
        "cards": [{"cardNumber": "12345", "formatType": "CSN"}],
        "pin": "1234",
    }
    assert clue_validate.problems(body) == []
    assert "doorIds" not in asyncio.run(auth_body(target().render(person(), ()), None))["auth"]


def test_auth_body_resolves_faces_or_refuses() -> None:
    face = Enrollment("E1", FACE_MODALITY, "f" * 64, 1, "lobby", datetime(2024, 1, 1, tzinfo=UTC))
    record = target().render(person(), (face,))

    async def load(digest_: str) -> bytes:
        assert digest_ == "f" * 64
        return b"\xff\xd8jpeg"

    body = asyncio.run(auth_body(record, load))
    assert body["auth"]["credentials"]["faceImages"] == ["/9hqcGVn"]
    with pytest.raises(PermanentTargetError):
        asyncio.run(auth_body(record, None))


def test_plan_disables_a_person_it_cannot_render_with_a_note() -> None:
    bad = person(key="E2", groups=frozenset({"nowhere"}))  # no door mapped: fail closed
    good = person(key="E3", groups=frozenset({"lab"}))
    clue = target(doors={"lab": (234,)})
    held = {
        "cloud": {
            "E2": HeldRecord(
                "cloud", "E2", RecordState.OK, digest="x", record={"activeStatus": "ACTIVE"}
            )
        }
    }
    now = datetime(2024, 6, 1, tzinfo=UTC)
    plan = compute_plan(Desired({"E2": bad, "E3": good}), [clue], held, Policy(), now)
    assert [(a.person_key, a.op.value) for a in plan.actions] == [
        ("E2", "disable"),
        ("E3", "create"),
    ]
    assert plan.actions[0].record["activeStatus"] == "INACTIVE"
    assert plan.notes == (
        "cloud: E2: groups: no door of target cloud is mapped to them; access switched off",
    )
    assert plan.summaries[0].unchanged == 0


def test_inverted_window_is_never_access() -> None:
    bad = person(
        key="E2",
        valid_from=datetime(2024, 6, 2, tzinfo=UTC),
        valid_until=datetime(2024, 6, 1, tzinfo=UTC),
    )
    held = {"cloud": {"E2": HeldRecord("cloud", "E2", RecordState.OK, digest="x",
                                       record={"activeStatus": "ACTIVE"})}}  # fmt: skip
    for now in (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, 12, tzinfo=UTC)):
        plan = compute_plan(Desired({"E2": bad}), [target()], held, Policy(), now)
        assert [(a.op.value, a.record["activeStatus"]) for a in plan.actions] == [
            ("disable", "INACTIVE")
        ]


def test_unknown_zone_or_far_future_is_a_config_error() -> None:
    from pydantic import ValidationError

    from syncd.errors import ConfigError

    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        target(time_zone="Mars/Olympus")  # refused by the config model, at load
    with pytest.raises(ConfigError):
        target(far_future="someday")
