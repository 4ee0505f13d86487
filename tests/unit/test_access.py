"""The access rule (`syncd.engine.access`) and how the plan follows it, on plain values.

Property tests: whatever the window, status, clock and other fields, no target record
gives access outside `valid_from ≤ now < valid_until` or to a disabled person. DST tests:
boundaries in Europe/Berlin on both transitions land on the right UTC instant.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.config import Ef45TargetConfig
from syncd.engine.access import (
    Access,
    access_at,
    boundaries,
    may_pass,
    next_boundary,
    staged,
    upcoming_on_targets,
)
from syncd.engine.plan import Policy, compute_plan
from syncd.model import Action, Change, Desired, HeldRecord, Op, Person, RecordState, Status, digest
from syncd.targets.ef45.target import Ef45Target

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
AHEAD = timedelta(days=14)


def ef45(name: str = "lobby") -> Ef45Target:
    return Ef45Target(name, Ef45TargetConfig(type="ef45", url="http://127.0.0.1:1"))


def person(
    key: str = "P1",
    *,
    status: Status = Status.ACTIVE,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Person:
    return Person(key, "Amélie", "N'Diaye", status=status, valid_from=start, valid_until=end)


def plan_for(
    people: list[Person], held: dict[str, HeldRecord], now: datetime = NOW
) -> list[Action]:
    desired = Desired(people={p.key: p for p in people})
    plan = compute_plan(desired, [ef45()], {"lobby": held}, Policy(create_ahead=AHEAD), now)
    return list(plan.actions)


def held_active(p: Person) -> HeldRecord:
    record = ef45().render(p, ())
    return HeldRecord("lobby", p.key, RecordState.OK, digest(record), record, p.key)


# -- the rule itself ------------------------------------------------------------------


def test_window_edges_are_half_open() -> None:
    p = person(start=NOW, end=NOW + timedelta(hours=1))
    assert access_at(p, NOW - timedelta(microseconds=1)) is Access.UPCOMING
    assert access_at(p, NOW) is Access.ALLOWED
    assert access_at(p, NOW + timedelta(hours=1) - timedelta(microseconds=1)) is Access.ALLOWED
    assert access_at(p, NOW + timedelta(hours=1)) is Access.EXPIRED


def test_disabled_never_passes_even_inside_window() -> None:
    p = person(status=Status.DISABLED, start=NOW - timedelta(days=1))
    assert access_at(p, NOW) is Access.DISABLED
    assert boundaries(p, AHEAD) == ()


aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300)
@given(
    status=st.sampled_from(Status),
    start=st.none() | aware,
    end=st.none() | aware,
    now=aware,
    name=st.text(max_size=5),
    cards=st.lists(st.integers(0, 2**40), max_size=2),
    pin=st.from_regex(r"[0-9]{0,6}", fullmatch=True),
)
def test_no_record_gives_access_outside_the_rule(
    status: Status,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    name: str,
    cards: list[int],
    pin: str,
) -> None:
    p = Person(
        "K",
        name,
        name,
        status=status,
        valid_from=start,
        valid_until=end,
        cards=tuple(cards),
        pin=pin,
    )
    inside = (start is None or start <= now) and (end is None or now < end)
    allowed = status is Status.ACTIVE and inside
    assert may_pass(p, now) is allowed
    # Whatever the ledger holds (nothing, or an active record), the plan's record for
    # this person gives access only when the rule allows it.
    for held in ({}, {"K": held_active(person("K"))}):
        for action in plan_for([p], held, now):
            if action.op is not Op.DELETE:
                assert action.record["access_allowed"] is allowed
            assert action.active_after is allowed


@given(start=aware, now=aware)
def test_staged_only_within_create_ahead_of_start(start: datetime, now: datetime) -> None:
    p = person(start=start)
    assert staged(p, now, AHEAD) is (now < start and start - now <= AHEAD)


# -- the plan -------------------------------------------------------------------------


def test_future_hire_is_created_ahead_with_access_off() -> None:
    actions = plan_for([person(start=NOW + timedelta(days=3))], {})
    assert [(a.op, a.record["access_allowed"], a.active_after) for a in actions] == [
        (Op.CREATE, False, False)
    ]


def test_far_future_hire_is_not_pushed() -> None:
    assert plan_for([person(start=NOW + timedelta(days=30))], {}) == []


def test_hire_gets_access_when_window_opens() -> None:
    p = person(start=NOW)
    staged_record = ef45().render(person(status=Status.DISABLED, start=NOW), ())
    held = HeldRecord(
        "lobby", "P1", RecordState.OK, digest(staged_record), staged_record, "P1",
        disabled_since=NOW - timedelta(days=3),
    )  # fmt: skip
    before = plan_for([p], {"P1": held}, NOW - timedelta(seconds=1))
    assert before == []
    (action,) = plan_for([p], {"P1": held}, NOW)
    assert (action.op, action.record["access_allowed"], action.active_after) == (
        Op.UPDATE,
        True,
        True,
    )


def test_expired_account_is_disabled_like_a_leaver() -> None:
    p = person(end=NOW - timedelta(days=1))
    (action,) = plan_for([p], {"P1": held_active(person())})
    assert (action.op, action.record["access_allowed"]) == (Op.DISABLE, False)


def test_start_moved_into_the_future_takes_access_away() -> None:
    p = person(start=NOW + timedelta(days=2))
    (action,) = plan_for([p], {"P1": held_active(person())})
    assert (action.op, action.record["access_allowed"], action.active_after) == (
        Op.DISABLE,
        False,
        False,
    )


def test_upcoming_lists_boundaries_with_targets_and_names() -> None:
    people = [
        person("P0123", start=datetime(2027, 1, 11, tzinfo=BERLIN)),
        person("P2", end=NOW + timedelta(days=2)),
        person("P3", start=NOW + timedelta(days=60)),
    ]
    found = upcoming_on_targets(people, [ef45("lobby"), ef45("hq")], NOW, NOW + timedelta(7), AHEAD)
    assert [(b.person_key, b.change) for b in found] == [
        ("P2", Change.LOSES_ACCESS),
        ("P0123", Change.GETS_ACCESS),
    ]
    shown = found[1]
    assert shown.targets == ("lobby", "hq")
    text = dataclasses.replace(shown, at=shown.at.astimezone(BERLIN)).describe()
    assert text == "P0123 Amélie N'Diaye gets access at lobby, hq on 2027-01-11 00:00 Europe/Berlin"


# -- DST in the site's zone -----------------------------------------------------------


def test_spring_forward_boundary_is_exact() -> None:
    # 2027-03-28: Berlin jumps from 02:00 CET to 03:00 CEST; 03:00 CEST is 01:00 UTC.
    start = datetime(2027, 3, 28, 3, 0, tzinfo=BERLIN)
    p = person(start=start)
    assert next_boundary([p], datetime(2027, 3, 28, 0, 0, tzinfo=UTC), timedelta(0)) == (
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    )
    with freeze_time("2027-03-28 00:59:59"):
        assert not may_pass(p, datetime.now(UTC))
    with freeze_time("2027-03-28 01:00:00"):
        assert may_pass(p, datetime.now(UTC))


def test_fall_back_boundary_is_exact() -> None:
    # 2027-10-31: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    end = datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=BERLIN)  # the second: 01:30 UTC
    p = person(end=end)
    assert next_boundary([p], datetime(2027, 10, 31, 0, 0, tzinfo=UTC), AHEAD) == datetime(
        2027, 10, 31, 1, 30, tzinfo=UTC
    )
    with freeze_time("2027-10-31 01:29:59"):
        assert may_pass(p, datetime.now(UTC))
    with freeze_time("2027-10-31 01:30:00"):
        assert not may_pass(p, datetime.now(UTC))


def test_create_ahead_counts_local_days_across_dst() -> None:
    # Start on 2027-04-05 00:00 CEST; 14 local days before is 2027-03-22 00:00 CET.
    start = datetime(2027, 4, 5, tzinfo=BERLIN)
    p = person(start=start)
    ahead_at = datetime(2027, 3, 22, tzinfo=BERLIN).astimezone(UTC)
    assert boundaries(p, AHEAD)[0].at == ahead_at
    assert not staged(p, ahead_at - timedelta(seconds=1), AHEAD)
    assert staged(p, ahead_at, AHEAD)


def test_hr_end_date_across_both_transitions() -> None:
    # date_end gives 23:59:59 local: the day before spring-forward is CET, the day
    # before fall-back is CEST; the boundary is each's own UTC instant.
    for day, offset in ((datetime(2027, 3, 27), 1), (datetime(2027, 10, 30), 2)):
        end = day.replace(hour=23, minute=59, second=59, tzinfo=BERLIN)
        p = person(end=end)
        instant = day.replace(hour=23 - offset, minute=59, second=59, tzinfo=UTC)
        assert boundaries(p, AHEAD)[-1].at == instant
        with freeze_time(instant - timedelta(seconds=1)):
            assert may_pass(p, datetime.now(UTC))
        with freeze_time(instant):
            assert not may_pass(p, datetime.now(UTC))


@settings(max_examples=200)
@given(
    bounds=st.lists(st.tuples(st.none() | aware, st.none() | aware), max_size=5),
    now=aware,
    ahead_days=st.integers(0, 30),
)
def test_next_boundary_skips_only_people_with_nothing_to_come(
    bounds: list[tuple[datetime | None, datetime | None]], now: datetime, ahead_days: int
) -> None:
    people = [person(f"P{i}", start=s, end=e) for i, (s, e) in enumerate(bounds)]
    ahead = timedelta(days=ahead_days)
    every = [b.at for p in people for b in boundaries(p, ahead) if b.at > now]
    assert next_boundary(people, now, ahead) == min(every, default=None)
