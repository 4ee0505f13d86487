"""Who may pass, and when: the one access rule every target follows.

A person may pass a door only while active in the source AND `valid_from ≤ now <
valid_until` (an unset bound is open). syncd decides this itself, at plan time, for
every target alike: a terminal's own clock and its reading of `match_until` are defence
in depth, never the rule. `access_at(person, now)` says where a person stands:

- `ALLOWED`: active and inside the window: the targets give access;
- `UPCOMING`: active, the window has not opened yet: within `create_ahead` of the start
  the person is created with access off (so they can enroll before day one), else not
  pushed at all;
- `EXPIRED`: active, the window has closed: a leaver (disabled, deleted after the grace
  period);
- `DISABLED`: disabled in the source: a leaver.

`boundaries(person, create_ahead)` are the instants at which that answer (or the record
a target holds) changes; the daemon runs a reconcile at the next one, and `syncd plan`
lists those of the coming days. Everything here is pure: no clock but the `now` given.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from syncd.model import Boundary, Change, Person, Status
from syncd.targets.base import Target


class Access(enum.Enum):
    """Where a person stands at one instant (see the module docstring)."""

    ALLOWED = "allowed"
    UPCOMING = "upcoming"
    EXPIRED = "expired"
    DISABLED = "disabled"


def access_at(person: Person, now: datetime) -> Access:
    """Return where `person` stands at `now` (timezone-aware)."""
    if person.status is not Status.ACTIVE:
        return Access.DISABLED
    if person.valid_until is not None and now >= person.valid_until:
        return Access.EXPIRED
    if person.valid_from is not None and now < person.valid_from:
        return Access.UPCOMING
    return Access.ALLOWED


def may_pass(person: Person, now: datetime) -> bool:
    """Return True if `person` may open doors at `now`: the access rule itself."""
    return access_at(person, now) is Access.ALLOWED


def staged(person: Person, now: datetime, create_ahead: timedelta) -> bool:
    """Return True for an upcoming person whose record targets hold ahead, access off."""
    return (
        access_at(person, now) is Access.UPCOMING
        and person.valid_from is not None
        and now >= created_ahead_at(person.valid_from, create_ahead)
    )


def created_ahead_at(start: datetime, create_ahead: timedelta) -> datetime:
    """Return when a person starting at `start` is created ahead, in UTC.

    Counted in the zone `start` carries: "14 days ahead" of a local midnight is a local
    midnight, whatever DST does in between.
    """
    return (start - create_ahead).astimezone(UTC)


def boundaries(person: Person, create_ahead: timedelta) -> tuple[Boundary, ...]:
    """Return the instants at which `person`'s access or staged record changes by time.

    A disabled person has none (only the source can change them). The start of the
    window is a boundary, and so is `create_ahead` before it (the record is created with
    access off); the end of the window is one. Instants are given in UTC, so that adding
    seconds to one is exact across DST changes.
    """
    if person.status is not Status.ACTIVE:
        return ()
    name = person.display_name
    found: list[Boundary] = []
    if person.valid_from is not None:
        start = person.valid_from
        if create_ahead > timedelta(0):
            ahead = created_ahead_at(start, create_ahead)
            found.append(Boundary(ahead, person.key, Change.CREATED_AHEAD, name))
        found.append(Boundary(start.astimezone(UTC), person.key, Change.GETS_ACCESS, name))
    if person.valid_until is not None:
        end = person.valid_until.astimezone(UTC)
        found.append(Boundary(end, person.key, Change.LOSES_ACCESS, name))
    return tuple(found)


def next_boundary(
    people: Iterable[Person], now: datetime, create_ahead: timedelta
) -> datetime | None:
    """Return the first boundary of `people` after `now` (None: none to come)."""
    return min(
        (b.at for p in _still_to_come(people, now) for b in boundaries(p, create_ahead)
         if b.at > now),
        default=None,
    )  # fmt: skip


def _still_to_come(people: Iterable[Person], now: datetime) -> Iterator[Person]:
    """Yield the people who may have a boundary after `now`: a cheap test that skips,
    without building their boundaries, the many whose start and end have both passed (a
    boundary created ahead lies before the start, so a passed start passes it too; a
    day's slack covers the wall-clock arithmetic of `created_ahead_at` around DST)."""
    slack = now - timedelta(days=1)
    for person in people:
        start, end = person.valid_from, person.valid_until
        if (start is not None and start > slack) or (end is not None and end > now):
            yield person


def upcoming_on_targets(
    people: Iterable[Person],
    targets: Sequence[Target],
    now: datetime,
    until: datetime,
    create_ahead: timedelta,
) -> tuple[Boundary, ...]:
    """Return `upcoming` boundaries, each naming the targets that select its person (a
    person no target selects has none)."""
    found: list[Boundary] = []
    for boundary_person, boundary in _boundaries_between(people, now, until, create_ahead):
        names = tuple(t.name for t in targets if t.selects(boundary_person))
        if names:
            found.append(dataclasses.replace(boundary, targets=names))
    found.sort()
    return tuple(found)


def _boundaries_between(
    people: Iterable[Person], now: datetime, until: datetime, create_ahead: timedelta
) -> Iterator[tuple[Person, Boundary]]:
    for person in _still_to_come(people, now):
        for boundary in boundaries(person, create_ahead):
            if now < boundary.at <= until:
                yield person, boundary
