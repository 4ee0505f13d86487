"""What every source returns: people keyed by their stable key, and the problems met.

A source reads raw records (CSV rows, LDAP entries), maps each with the compiled mapping,
and reports every record it could not map as a `SourceProblem` naming the record, the
field and the decision taken (one rule for every source: `syncd.sources.salvage`). It
never writes to the ledger; cursors it returns are stored by the engine only after the run
that used them is committed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from syncd.model import Person, RawRecord


class Decision(enum.StrEnum):
    """What syncd did with a defective record (named in every report of it)."""

    HELD = "held"
    """The key is readable: what the ledger holds for it is kept as it was."""
    DISABLED = "disabled"
    """The record (or another with its key) says disabled, or its validity is unreadable:
    the person is disabled (fail closed)."""
    SKIPPED = "skipped"
    """No readable key: nothing can be done for this record."""


@dataclass(frozen=True, slots=True)
class SourceProblem:
    """A defective record: where it is (file:line:column or DN), which field, why, and
    what syncd decided for its person (`decision`)."""

    source: str
    where: str
    field: str
    message: str
    decision: Decision = Decision.HELD

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.field}: {self.message} → {self.decision}"


@dataclass(frozen=True, slots=True)
class SourceRead:
    """The outcome of one read.

    `complete` is True for a full read (everyone the source holds is in `people`, so a key
    missing here has left) and False for a delta read (only changed people; `deleted`
    names keys the source reports gone). `held` names keys whose record the source saw but
    could not map: the engine leaves what the ledger holds for them untouched, so a bad
    row never reads as a leaver. `disabled` names keys whose records are defective but say
    (or must be taken to say) disabled: the engine disables those people (fail closed),
    whatever else their records hold. `cursor` is the position to store once the run that used
    this read is committed (None: the source keeps no cursor).
    """

    people: Mapping[str, Person]
    problems: tuple[SourceProblem, ...] = ()
    complete: bool = True
    deleted: frozenset[str] = field(default_factory=frozenset)
    held: frozenset[str] = field(default_factory=frozenset)
    disabled: frozenset[str] = field(default_factory=frozenset)
    cursor: str | None = None


Salvaged = tuple[str | None, bool | None, tuple[str, ...]]
"""What a record the mapping rejects still tells: (key or None if unreadable; True if its
status or disabled flag says disabled, False if active, None if unreadable; the validity
fields that cannot be read). `syncd.sources.salvage` decides from it."""


class RecordMapper(Protocol):
    """A compiled mapping (see syncd.mapping): raw record → Person."""

    @property
    def attributes(self) -> frozenset[str]:
        """The source attributes the mapping reads (an LDAP search asks for these)."""
        ...

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """The source attributes the key is made of (to locate duplicate keys)."""
        ...

    @property
    def member_of_dns(self) -> tuple[str, ...]:
        """The group DNs `member_of` access rules test (expanded for nested groups)."""
        ...

    def map(self, raw: RawRecord) -> Person:
        """Return the Person of `raw`; raise RecordError(field, message) if it cannot."""
        ...

    def key_of(self, raw: RawRecord) -> str | None:
        """Return the key of `raw` even when the rest does not map; None if unreadable."""
        ...

    def salvage(self, raw: RawRecord) -> Salvaged:
        """Return what `raw` still tells when `map` rejects it (never raises)."""
        ...


class Source(Protocol):
    """A configured source of truth."""

    name: str

    def read(self, *, cursor: str | None = None, full: bool = True) -> SourceRead:
        """Return the people of the source; raise SourceError if it cannot be read safely."""
        ...


@runtime_checkable
class Reachable(Protocol):
    """A source that can be reached without reading it whole (`syncd validate --connect`)."""

    name: str

    def check_reach(self) -> str:
        """Reach the source read-only (a bind and a one-entry search; a file's header);
        return one line saying what answered, never a secret. Raise ConfigError for an
        unreadable secret, SourceError (or SourceRefused) if the source cannot be read."""
        ...
