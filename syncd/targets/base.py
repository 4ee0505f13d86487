"""The protocol every target kind provides (DESIGN.md, "Targets").

A target is one configured system: one EF-45 terminal or one CLUe place.
- `render(person, enrollments)` is pure: the record the target should hold, canonical
  and JSON-able, with templates referenced by digest (bytes never enter a plan).
- `is_active(record)` tells whether a record lets the person through.
- `session()` opens the remote system (an EF-45 lock, an HTTP client) for one run; its
  `apply(action)` executes one action and returns the remote id the target now uses.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from syncd.model import Action, Enrollment, Person, Record


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


def selects_by_groups(groups: Sequence[str], person: Person) -> bool:
    """Return True if `groups` is empty (everyone) or shares a group with `person`."""
    return not groups or not person.groups.isdisjoint(groups)
