"""The protocol every target kind provides (DESIGN.md, "Targets").

A target is one configured system: one EF-45 terminal or one CLUe place.
- `render(person, enrollments)` is pure: the record the target should hold, canonical
  and JSON-able, with templates referenced by digest (bytes never enter a plan).
- `is_active(record)` tells whether a record lets the person through.
- `session()` opens the remote system (an EF-45 lock, an HTTP client) for one run; its
  `apply(action)` executes one action and returns the remote id the target now uses.

Optional capabilities, each its own runtime-checkable Protocol: the engine asks
`isinstance(target, CollectsEvents)` and so on, and sees only the typed values below,
never a wire format (DESIGN.md, "Imports run downward only"):
- `Observable.observe()`: what the remote system holds, as records of `render`'s shape
  (deep reconcile);
- `CollectsEvents.events()`: a reader of the access events after a cursor, as
  `model.AccessEvent`s; the engine stores them and moves the cursor;
- `HasClock.set_clock(now)`: set the device clock, return what it was set to (`ClockSet`);
- `HoldsTemplates.held_templates()`: a reader of the biometric templates enrolled at the
  device (`HeldTemplates`), for backfill; the engine decides what the ledger keeps;
- `Reachable.check_reach()`: reach the system read-only (`syncd validate --connect`);
- `NeedsSecrets.check_secrets()`: read the secrets the target will need, so that a run
  refuses before it starts rather than failing every action.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from syncd.model import AccessEvent, Action, Enrollment, Person, Record
from syncd.owners import Owner


class TargetSession(Protocol):
    """One open connection to a target, for the actions of one run."""

    async def apply(self, action: Action) -> str | None:
        """Execute `action`; return the remote id (None if the target has none).

        Raise TemporaryTargetError when a later retry may succeed, PermanentTargetError
        when it will not.
        """
        ...


class Target(Protocol):
    """One configured target system."""

    name: str
    kind: str
    secret_fields: frozenset[str]
    """Record fields whose values never appear in a report, log or audit row."""

    @property
    def render_key(self) -> Hashable:
        """Everything `render` depends on besides its arguments: targets with equal keys
        render a person identically, so a plan renders once for all of them."""
        ...

    def selects(self, person: Person) -> bool:
        """Return True if `person` belongs on this target (by group)."""
        ...

    def render(self, person: Person, enrollments: Sequence[Enrollment]) -> Record:
        """Return the record this target should hold for `person` (pure)."""
        ...

    def is_active(self, record: Record) -> bool:
        """Return True if `record` lets its person through the doors."""
        ...

    def session(self) -> AbstractAsyncContextManager[TargetSession]:
        """Open the target for one run (take its lock, open its client)."""
        ...


class Memo(Protocol):
    """Durable text a target keeps across sessions and processes (e.g. its lock's state),
    and who is using it (so that one syncd process never undoes another live one's work).

    The engine gives each target built through the registry its own (in the ledger).
    """

    @property
    def target(self) -> str:
        """The configured name of the target (for `syncd unlock NAME` in messages)."""
        ...

    def owner(self) -> Owner:
        """Return who writes through this memo: this process and its current run."""
        ...

    def recall(self) -> str | None:
        """Return the text last remembered, or None."""
        ...

    def remember(self, value: str | None) -> None:
        """Store `value` durably before returning (None: forget)."""
        ...


# --- deep observation --------------------------------------------------------------------


@runtime_checkable
class Observable(Protocol):
    """A target that can list what it holds, as records of `render`'s shape."""

    name: str

    async def observe(self) -> Mapping[str, Record]:
        """Return remote key → record for everything the remote system holds.

        Raise a SyncdError if the list cannot be read completely (never a partial list).
        """
        ...


# --- access events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What one collect asks a target: events after `cursor` (the text the target's
    last `EventBatch.cursor` gave, None the first time), up to `now`.

    `person_keys`: remote id → person key of every record the target holds, for targets
    whose events name the remote record rather than the person.
    """

    cursor: str | None
    now: datetime
    person_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """The events one read returned, and the cursor to store once they are committed
    (None: leave the stored cursor as it is)."""

    events: tuple[AccessEvent, ...]
    cursor: str | None


class EventReader(Protocol):
    """An open connection reading one target's events (see `CollectsEvents`)."""

    async def read(self, query: EventQuery) -> EventBatch:
        """Return the events after `query.cursor` (raise a SyncdError if unreadable)."""
        ...

    async def committed(self, batch: EventBatch) -> None:
        """Called once `batch` is stored in the ledger (e.g. to clear the device's logs)."""
        ...


@runtime_checkable
class CollectsEvents(Protocol):
    """A target whose access events syncd collects."""

    name: str

    def events(self) -> AbstractAsyncContextManager[EventReader]:
        """Open the target for reading its events (an EF-45 takes its lock)."""
        ...


# --- device clock ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockSet:
    """A device clock set: the wall time (naive, in the device's zone) it now keeps."""

    set_to: datetime
    zone: str


@runtime_checkable
class HasClock(Protocol):
    """A target with its own clock that syncd keeps in step with the host's."""

    name: str

    async def set_clock(self, now: datetime) -> ClockSet:
        """Set the device clock to the aware `now` in the device's zone; raise a
        SyncdError if the device cannot be set."""
        ...


# --- templates held at the device (backfill) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateCapture:
    """One biometric template as a device holds it: a modality of `syncd.targets.templates`
    and the bytes the ledger would store (never logged)."""

    modality: str
    plaintext: bytes
    record_version: int

    def __repr__(self) -> str:  # the bytes never reach a log or a traceback
        return f"TemplateCapture({self.modality!r}, version={self.record_version})"


@dataclass(frozen=True, slots=True)
class HeldTemplates:
    """The templates a device holds for one person that belong together (both eyes of
    one subject; one face). `what` names them for a finding ("eye templates", "face").

    `checkable`: the device can tell whether they match another person it holds
    (`TemplateReader.find_match`).
    """

    person_key: str
    what: str
    captures: tuple[TemplateCapture, ...]
    checkable: bool = False


class TemplateReader(Protocol):
    """An open (locked) connection reading the templates one device holds."""

    record_version: int
    """The record version the device reports (its templates' format)."""

    def pages(self) -> AsyncIterator[Sequence[HeldTemplates]]:
        """Yield everything the device holds, one bounded page at a time."""
        ...

    async def find_match(self, held: HeldTemplates) -> str | None:
        """Return the person key of the device's enrollment matching `held` (maybe
        `held`'s own), or None when none does or `held` is not checkable."""
        ...

    async def image(self, person_key: str) -> TemplateCapture | None:
        """Return the face image the device captured for `person_key`, or None."""
        ...


@runtime_checkable
class HoldsTemplates(Protocol):
    """A device where people enroll, whose templates syncd reads back into its ledger."""

    name: str

    def selects(self, person: Person) -> bool:
        """Return True if `person` belongs on this device (its templates may go there)."""
        ...

    @property
    def template_version(self) -> int | None:
        """The record version configured for this device (None: the device's own)."""
        ...

    def held_templates(self) -> AbstractAsyncContextManager[TemplateReader]:
        """Open the device for reading its templates (an EF-45 takes its lock)."""
        ...


# --- checks before a run (syncd validate) --------------------------------------------------


@runtime_checkable
class Reachable(Protocol):
    """A target that can be reached without changing anything (no lock, no write)."""

    name: str

    async def check_reach(self) -> str:
        """Reach the remote system read-only; return one line saying what answered (never
        a secret). Raise a SyncdError (ConfigError for an unreadable secret, a
        TargetError for an unreachable or refusing system) if it cannot be reached."""
        ...


@runtime_checkable
class NeedsSecrets(Protocol):
    """A target whose sessions need secrets (an API key) read from outside syncd.toml."""

    name: str

    def check_secrets(self) -> None:
        """Read every secret the target's sessions need (and forget them); raise
        ConfigError naming the setting (`targets.NAME.api_key`) if one is unreadable."""
        ...


def selects_by_groups(groups: Sequence[str], person: Person) -> bool:
    """Return True if `groups` is empty (everyone) or shares a group with `person`."""
    return not groups or not person.groups.isdisjoint(groups)
