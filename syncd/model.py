"""Plain frozen value types shared by every layer of syncd.

`model` imports nothing of syncd. Everything here is immutable and hashable so that a
plan can be computed, compared and tested on plain values.

- `Person`: the canonical person a source maps to (see DESIGN.md, "The canonical person").
- `Enrollment`: a biometric template known to the ledger (bytes never travel in a plan).
- `Record`: what one target should hold for one person, as a canonical JSON-able mapping.
- `Action` / `Plan`: the diff between what targets should hold and what the ledger says
  they hold.
- `AccessEvent`: one door event as a target reported it, in every target's one shape.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RawValue = str | bytes | Sequence[str | bytes]
"""One attribute of a raw source record: a CSV cell, or an LDAP attribute's values."""

RawRecord = Mapping[str, RawValue]
"""A record as a source read it, before mapping: attribute name → value(s)."""


class Status(enum.StrEnum):
    """Whether a person may use the doors at all."""

    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class Person:
    """One person as the source of truth describes them.

    `key` is stable for the life of the person (AD objectGUID, OpenLDAP entryUUID, HR
    employee id): never a DN or a name, so that a rename is an update. Datetimes are
    timezone-aware. `cards` are card numbers as integers; `groups` decide which targets
    and doors the person goes to.
    """

    key: str
    first_name: str
    last_name: str
    email: str = ""
    employee_number: str = ""
    status: Status = Status.ACTIVE
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    cards: tuple[int, ...] = ()
    pin: str = ""
    groups: frozenset[str] = frozenset()
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("valid_from", "valid_until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"Person {self.key!r}: {name} must be timezone-aware")

    @property
    def display_name(self) -> str:
        """Return "First Last", or whichever of the two is set."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def attribute(self, name: str, default: str = "") -> str:
        """Return the extra attribute `name` (mapping-defined), or `default`."""
        return dict(self.attributes).get(name, default)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict that `person_from_json` turns back into this person."""
        return {
            "key": self.key,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "employee_number": self.employee_number,
            "status": self.status.value,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "cards": list(self.cards),
            "pin": self.pin,
            "groups": sorted(self.groups),
            "attributes": [list(pair) for pair in self.attributes],
        }


def person_from_json(data: Mapping[str, Any]) -> Person:
    """Given the output of `Person.to_json`, return the equal `Person`."""
    return Person(
        key=data["key"],
        first_name=data["first_name"],
        last_name=data["last_name"],
        email=data.get("email", ""),
        employee_number=data.get("employee_number", ""),
        status=Status(data.get("status", "active")),
        valid_from=_parse_dt(data.get("valid_from")),
        valid_until=_parse_dt(data.get("valid_until")),
        cards=tuple(int(c) for c in data.get("cards", ())),
        pin=data.get("pin", ""),
        groups=frozenset(data.get("groups", ())),
        attributes=tuple((str(k), str(v)) for k, v in data.get("attributes", ())),
    )


def _parse_dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A biometric template the ledger holds for (person, modality).

    Only the digest travels through plans and reports; the bytes stay encrypted in the
    ledger and are fetched by apply when a target needs them.
    """

    person_key: str
    modality: str
    digest: str
    record_version: int
    origin_target: str
    captured_at: datetime


Record = Mapping[str, Any]
"""What one target should hold for one person: canonical, JSON-able, no template bytes."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""The encoder `json.dumps` would build on every call (a large plan hashes 100 000s)."""


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of `value` (sorted keys, no spaces, UTF-8 kept)."""
    return _CANONICAL.encode(value)


def digest(value: Any) -> str:
    """Return a stable hash of `value`'s canonical JSON, used to detect change."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


Digest = Callable[[Any], str]
"""How digests of records and people are made: `digest`, or `keyed_digest(key)`."""


def keyed_digest(key: bytes | None) -> Digest:
    """Return `digest`, but with a mapping's non-empty `pin` replaced by its HMAC under
    `key` first: a short PIN can no longer be confirmed against a stored digest by
    trying every value. Records without a PIN get `digest`'s own value. None: `digest`."""
    if key is None:
        return digest

    def keyed(value: Any) -> str:
        if isinstance(value, Mapping):
            pin = value.get("pin")
            if isinstance(pin, str) and pin:
                mac = hmac.new(key, pin.encode("utf-8"), hashlib.sha256).hexdigest()
                value = {**value, "pin": f"hmac:{mac}"}
        return digest(value)

    return keyed


class Op(enum.StrEnum):
    """What an action does to a target."""

    CREATE = "create"
    UPDATE = "update"
    DISABLE = "disable"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a record, before and after (either may be None: absent)."""

    name: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class Action:
    """One self-describing change to one target for one person.

    `record` is the full record the target must hold after the action (the last record
    held, for a delete). `before_digest` is None for a create. `active_after` says whether
    the person may open doors once the action is done; `attempts` counts earlier failed
    tries of this record (it sets the next retry time). `blocked` names the safety rule
    that held the action back; a blocked action is reported and recorded, never applied.
    """

    target: str
    person_key: str
    op: Op
    record: Record
    after_digest: str
    before_digest: str | None = None
    remote_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    active_after: bool = True
    attempts: int = 0
    blocked: str | None = None

    def describe(self, *, done: bool) -> str:
        """Return "Would create …" (dry run) or "Created …" (done), for logs and reports."""
        verbs = {
            Op.CREATE: ("create", "Created"),
            Op.UPDATE: ("update", "Updated"),
            Op.DISABLE: ("disable", "Disabled"),
            Op.DELETE: ("delete", "Deleted"),
        }
        would, past = verbs[self.op]
        verb = past if done else f"Would {would}"
        return f"{verb} {self.person_key} on {self.target}"


@dataclass(frozen=True, slots=True)
class TargetSummary:
    """Counts of one target's plan.

    Op counts are actions an apply would execute; `blocked` are held back by a safety cap;
    `deferred` are failed records waiting for their retry time; `unchanged` are in step.
    """

    target: str
    create: int = 0
    update: int = 0
    disable: int = 0
    delete: int = 0
    blocked: int = 0
    unchanged: int = 0
    deferred: int = 0

    @property
    def pending(self) -> int:
        """Actions that an apply would execute (blocked ones excluded)."""
        return self.create + self.update + self.disable + self.delete


class Change(enum.StrEnum):
    """What time alone does to a person's records at a boundary of their validity."""

    CREATED_AHEAD = "is created (access off)"
    GETS_ACCESS = "gets access"
    LOSES_ACCESS = "loses access"


@dataclass(frozen=True, slots=True, order=True)
class Boundary:
    """One instant at which a person's records change by time alone, on `targets`."""

    at: datetime
    person_key: str
    change: Change
    name: str = ""
    targets: tuple[str, ...] = ()

    def describe(self) -> str:
        """Return "P0123 Amélie N'Diaye gets access at lobby, hq on 2027-01-04 00:00 Zone",
        the time in the zone `at` carries (the engine gives it the site's zone)."""
        who = f"{self.person_key} {self.name}".strip()
        where = f" at {', '.join(self.targets)}" if self.targets else ""
        return f"{who} {self.change}{where} on {self.at:%Y-%m-%d %H:%M} {self.at.tzinfo}"


@dataclass(frozen=True, slots=True)
class Plan:
    """The ordered actions that would bring every target to the desired state.

    `upcoming` lists what time alone will change in the coming days (access opening and
    closing), for reports; a plan made at `created_at` does not act on them yet.
    """

    actions: tuple[Action, ...]
    summaries: tuple[TargetSummary, ...]
    created_at: datetime
    notes: tuple[str, ...] = field(default=())
    upcoming: tuple[Boundary, ...] = field(default=())
    unobserved: Mapping[str, str] = field(default_factory=dict)
    """Target → why its deep look failed (planned from the ledger alone): the run is
    not whole, and says so by its outcome and exit code."""

    @property
    def pending(self) -> int:
        """Number of actions an apply would execute."""
        return sum(s.pending for s in self.summaries)

    @property
    def blocked(self) -> int:
        """Number of actions held back by a safety rule."""
        return sum(s.blocked for s in self.summaries)

    @property
    def in_step(self) -> bool:
        """True when nothing is pending, blocked or deferred: every target is in step."""
        return all(s.pending + s.blocked + s.deferred == 0 for s in self.summaries)

    def runnable(self) -> tuple[Action, ...]:
        """Return the actions an apply executes (blocked ones excluded), in plan order."""
        return tuple(a for a in self.actions if a.blocked is None)

    def for_target(self, target: str) -> Iterator[Action]:
        """Yield the actions of one target, in plan order."""
        return (a for a in self.actions if a.target == target)


class ActionOutcome(enum.StrEnum):
    """What happened to one action, as the ledger's `changes.outcome` stores it.

    PENDING is committed before a create is sent (the target may hold the record from
    then on, whatever happens to the process); the others end the action.
    """

    PENDING = "pending"
    APPLIED = "applied"
    FAILED = "failed"
    BLOCKED = "blocked"


class RunOutcome(enum.StrEnum):
    """How a run ended, as the ledger's `runs.outcome` stores it."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    BLOCKED = "blocked"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    PLANNED = "planned"


class RecordState(enum.StrEnum):
    """Where syncd stands with one (target, person) record."""

    OK = "ok"
    PENDING = "pending"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class HeldRecord:
    """What the ledger says one target holds for one person (plan input).

    `digest`/`record` describe what syncd last pushed successfully (None: nothing held,
    e.g. a create that never succeeded). `disabled_since` is when the record was last
    switched to no-access; `next_attempt_at` defers a retry after failures.
    """

    target: str
    person_key: str
    state: RecordState
    digest: str | None = None
    record: Record | None = None
    remote_id: str | None = None
    created_by_syncd: bool = True
    disabled_since: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None

    @property
    def present(self) -> bool:
        """True when the target holds a record pushed by syncd."""
        return self.digest is not None


class HeldTable(Mapping[str, HeldRecord]):
    """One target's held records as a large ledger loads them: most kept as a digest alone.

    Nearly every record of a ledger in step is *settled*: state ok, pushed and created by
    syncd, active (no `disabled_since`), never failed (no attempts, no retry time), its
    record and last error not loaded. A settled record is kept as its digest (and its
    remote id, when that is not the person key) and built as a HeldRecord only when asked
    for, so that a plan over a million records compares digests (`settled_digests`)
    without building a million objects. `others` holds every other record as it is.
    Given disjoint keys, the table reads like the dict {key: HeldRecord} it stands for.

    A *partial* table (`settled_total` given: a plan after a delta read, `engine.instep`)
    holds the settled records of some people only, and how many settled records there are
    in all: it answers for those people and counts, and refuses to be walked (`__iter__`,
    `len`), which would silently miss the records it did not load.
    """

    __slots__ = ("_others", "_remote_ids", "_settled_total", "settled_digests", "target")

    def __init__(
        self,
        target: str,
        settled_digests: Mapping[str, str],
        remote_ids: Mapping[str, str],
        others: Mapping[str, HeldRecord],
        settled_total: int | None = None,
    ) -> None:
        self.target = target
        self.settled_digests = settled_digests
        """Person key → digest of each settled record loaded (its remote id: `remote_ids`
        or the key): every one, unless the table is partial."""
        self._remote_ids = remote_ids
        self._others = others
        self._settled_total = settled_total

    @property
    def complete(self) -> bool:
        """False for a partial table (see the class docstring)."""
        return self._settled_total is None

    @property
    def settled_count(self) -> int:
        """How many settled records the target holds (loaded or not)."""
        total = self._settled_total
        return len(self.settled_digests) if total is None else total

    @classmethod
    def of(cls, target: str, records: Mapping[str, HeldRecord]) -> HeldTable:
        """Return `records` as a table: itself if it is one, else every record unsettled."""
        if isinstance(records, HeldTable):
            return records
        return cls(target, {}, {}, records)

    def settled_digest(self, key: str) -> str | None:
        """Return the digest of `key`'s record if it is settled (state ok, never failed,
        active), else None (not held, or held otherwise: look at the record)."""
        return self.settled_digests.get(key)

    def __getitem__(self, key: str) -> HeldRecord:
        found = self._others.get(key)
        if found is not None:
            return found
        return HeldRecord(
            self.target,
            key,
            RecordState.OK,
            self.settled_digests[key],
            remote_id=self._remote_ids.get(key, key),
        )

    def get(self, key: str, default: Any = None) -> Any:
        """Return the HeldRecord of `key`, or `default` (faster than Mapping's own get)."""
        if key in self._others or key in self.settled_digests:
            return self[key]
        return default

    def __contains__(self, key: object) -> bool:
        return key in self.settled_digests or key in self._others

    def __iter__(self) -> Iterator[str]:
        self._refuse_partial()
        yield from self.settled_digests
        yield from self._others

    def __len__(self) -> int:
        self._refuse_partial()
        return len(self.settled_digests) + len(self._others)

    def _refuse_partial(self) -> None:
        if self._settled_total is not None:
            raise TypeError(f"the held records of {self.target} were loaded in part only")

    def unsettled(self) -> Mapping[str, HeldRecord]:
        """Return the records that are not settled (failed, pending, disabled, …)."""
        return self._others

    def present_count(self, *, with_access: bool = False) -> int:
        """Return how many records the target holds (`HeldRecord.present`), building none;
        `with_access`: only those letting their person through (every settled one does)."""
        others = (r for r in self._others.values() if r.present)
        if with_access:
            others = (r for r in others if r.disabled_since is None)
        return self.settled_count + sum(1 for _ in others)


def count_present(held: Mapping[str, HeldRecord], *, with_access: bool = False) -> int:
    """Return how many of `held` the target holds (`HeldRecord.present`); `with_access`:
    only the people with access there (present and active: no `disabled_since`)."""
    if isinstance(held, HeldTable):
        return held.present_count(with_access=with_access)
    found = (r for r in held.values() if r.present)
    return sum(1 for r in found if not with_access or r.disabled_since is None)


ALLOWED = "allowed"
DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Desired:
    """What the sources say now: `people` present, `gone` (last known) no longer there,
    and the templates enrolled per person.

    `digest_of` makes the digests records are compared by (the ledger's keyed digest, so
    that a stored digest never confirms a guessed PIN; plain `digest` in tests)."""

    people: Mapping[str, Person]
    gone: Mapping[str, Person] = field(default_factory=dict)
    enrollments: Mapping[str, Sequence[Enrollment]] = field(default_factory=dict)
    digest_of: Digest = digest


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One event as a target reported it, mapped: `person_key` None when not a person's.

    `occurred_at` is aware (UTC); `result` is ALLOWED, DENIED or None (not an access
    decision); `remote_id` is unique per target (the ledger stores each event once).
    """

    target: str
    remote_id: str
    occurred_at: datetime
    event_type: str
    person_key: str | None = None
    result: str | None = None
    detail: str | None = None
