"""The in-step mark: a plan after a delta read decides only the people who may have moved.

An applying run that ends with every action of its plan applied — nothing blocked,
deferred, failed or left out, no note, every configured target planned, no saved plan
restricting it — leaves every target in step with every person at that run's `now` T.
It says so in the ledger (cursor `plan:in_step`: the run, T, and the fingerprint of
everything a decision depends on besides the people and the records). Any applying run
withdraws the mark before it writes anything, so a crash or a partial run leaves none;
and a mark is used only while its run is the newest run that was not a dry run.

While the mark holds and the fingerprint is unchanged, a later plan whose reads are all
deltas can decide only the *due* people (`due_keys`): a person any delta names, a
person whose access or staged state differs between T and now (a window boundary
crossed), and every person with a record that is not settled (disabled leavers, whose
grace period may end; failed or adopted records). Everyone else has the person and the
records of T, and the same decision at now as at T: in step. Full reads plan everyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta

from syncd.config import Config
from syncd.engine.access import may_pass, staged
from syncd.engine.plan import Policy
from syncd.engine.reader import Reading, parse_time
from syncd.ledger.peopleindex import LazyPeople, prefetch
from syncd.ledger.store import Ledger
from syncd.model import Desired, Person

CURSOR = "plan:in_step"


def fingerprint(config: Config, targets: Collection[str], desired: Desired) -> str:
    """Return the digest of what every decision depends on besides people and records:
    syncd's version (a new release may render records differently: its first plan plans
    everyone), the sources (one dropped from the configuration makes its people leavers),
    the targets planned and their configuration, the plan's policy, the PIN key (through
    the keyed digest of a fixed probe) and the templates enrolled."""
    enrolled = {
        key: [dataclasses.astuple(e) for e in found]
        for key, found in sorted(desired.enrollments.items())
    }
    parts = {
        "syncd": _version(),
        "sources": sorted(config.sources),
        "targets": {
            n: config.targets[n].model_dump(mode="json") if n in config.targets else None
            for n in sorted(targets)
        },
        "safety": config.safety.model_dump(mode="json"),
        "create_ahead_days": config.access.create_ahead_days,
        "key": desired.digest_of({"in_step": "probe"}),
        "enrolled": enrolled,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # only for a delta plan

    try:
        return version("syncd")
    except PackageNotFoundError:
        return "unknown"


def mark(ledger: Ledger, run_id: int, at: datetime, fingerprint_: str, now: datetime) -> None:
    """Record that run `run_id` left every target in step with every person at `at`."""
    found = {"run": run_id, "at": at.isoformat(), "fp": fingerprint_}
    ledger.set_cursor(CURSOR, json.dumps(found), now)


def clear(ledger: Ledger, now: datetime) -> None:
    """Withdraw the mark (an applying run is about to write)."""
    ledger.set_cursor(CURSOR, "", now)


def marked_at(ledger: Ledger, fingerprint_: str, now: datetime) -> datetime | None:
    """Return T of a mark made under `fingerprint_` at or before `now` by the newest run
    that was not a dry run; else None. (A run that did not withdraw the mark — one of an
    older syncd — still leaves it unused.)"""
    text = ledger.get_cursor(CURSOR)
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    at = parse_time(found.get("at")) if isinstance(found, dict) else None
    if at is None or found.get("fp") != fingerprint_ or at > now:
        return None
    return at if found.get("run") == ledger.last_writing_run() else None


def all_deltas(reading: Reading) -> bool:
    """True if every source was read as a delta (a full read must plan everyone)."""
    return bool(reading.reads) and not any(r.complete for r in reading.reads.values())


def due_keys(
    reading: Reading,
    unsettled: Collection[str],
    policy: Policy,
    since: datetime,
) -> frozenset[str]:
    """Return the people whose decision may differ from the one in step at `since`
    (see the module docstring); `unsettled`: the people with a record not settled."""
    now = reading.now
    due: set[str] = set(unsettled)
    for read in reading.reads.values():
        due.update(read.people, read.deleted, read.held, read.disabled)
    slack = _SLACK
    starts = (since - slack, now + policy.create_ahead + slack)
    candidates = with_windows(reading.desired.people, starts, (since - slack, now + slack))
    due.update(_crossed(candidates, since, now, policy))
    prefetch(reading.desired.gone, due)  # the plan asks for each (people and gone share it)
    return frozenset(due)


_SLACK = timedelta(days=1)
"""Margin around the spans a window boundary is looked for in: `access.created_ahead_at`
counts days in the start's own zone, so it may lie an hour (a DST shift) off the UTC
arithmetic of a query; the exact test is `_crossed`'s."""


def with_windows(
    people: Mapping[str, Person],
    starts: tuple[datetime, datetime],
    ends: tuple[datetime, datetime],
) -> Iterable[Person]:
    """Return a superset of the people of `people` whose window starts in `starts`
    (lo, hi] or ends in `ends` (lo, hi]: found by index among the ledger's people
    (`ledger.peopleindex.LazyPeople`) plus every person given as read; all of them when
    `people` is a plain mapping (a full read decodes everyone anyway)."""
    if not isinstance(people, LazyPeople):
        return people.values()
    keys = (people.index.window_keys(starts, ends) & people.keys()) | people.given.keys()
    prefetch(people, keys)
    return [people[key] for key in sorted(keys)]


def _crossed(people: Iterable[Person], since: datetime, now: datetime, policy: Policy) -> set[str]:
    """Return the people whose access or staged state at `now` is not the one at `since`."""
    found: set[str] = set()
    ahead = policy.create_ahead
    for person in people:
        if person.valid_from is None and person.valid_until is None:
            continue  # no window: time alone never changes their decision
        before = (may_pass(person, since), staged(person, since, ahead))
        if before != (may_pass(person, now), staged(person, now, ahead)):
            found.add(person.key)
    return found
