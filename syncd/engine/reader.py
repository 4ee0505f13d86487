"""The reader: sources → people, with the shrink guards → a `Reading`.

`read_sources` reads every source — in full, or only what changed since the source's
cursor (a delta) — and refuses a full read that looks wrong (empty, or shrunk beyond
`safety.max_source_shrink` while the ledger holds people; a delta is partial by nature
and exempt). Left to decide, it reads in full when a source has no cursor or its last
full read (cursor `source:NAME:full_at`) is older than `full_read_every_h`: only a full
read finds people deleted from the source. Nothing is written but the sealing of PINs
left in clear (`Ledger.seal_pins`): cursors move only once a run's outcomes are
committed (`engine.recorder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from syncd.config import Config, LdapSourceConfig
from syncd.engine.defects import disabled_people
from syncd.errors import SourceError, SourceRefused
from syncd.ledger.peopleindex import LazyPeople, PeopleIndex
from syncd.ledger.store import Ledger
from syncd.ledger.templates import TemplateVault
from syncd.model import Desired, Person
from syncd.sources.base import Source, SourceProblem, SourceRead


@dataclass(frozen=True)
class Reading:
    """The sources' answers and the desired state built from them and the ledger.

    `now` is the run's one clock reading: when the sources were read, and the instant the
    plan decides access at. `kept_rows` are each source's defective rows whose people
    stay as the ledger knows them (`SourceRead.held`).
    """

    desired: Desired
    reads: Mapping[str, SourceRead]
    now: datetime
    newly_gone: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def started(self) -> Mapping[str, datetime]:
        """When each source's read began: a full read's `full_at` once committed."""
        return dict.fromkeys(self.reads, self.now)

    @property
    def problems(self) -> tuple[SourceProblem, ...]:
        """Every defective record the sources met (kept, disabled or skipped)."""
        return tuple(p for read in self.reads.values() for p in read.problems)


@dataclass(frozen=True)
class ReadOptions:
    """How to read: `full` True (every source in full), False (a delta since each cursor;
    a source without one still reads in full) or None (`wants_full` decides per source);
    `allow_shrink` lets a full read shrink beyond the safety limit."""

    full: bool | None = None
    allow_shrink: bool = False


def read_sources(
    config: Config,
    ledger: Ledger,
    sources: Mapping[str, Source],
    vault: TemplateVault | None,
    now: datetime,
    options: ReadOptions = ReadOptions(),
) -> Reading:
    """Read every source at `now`; raise SourceRefused for a read that looks wrong."""
    ledger.seal_pins()  # digests keyed under the current key before any compare
    stored = ledger.people_index()
    reads: dict[str, SourceRead] = {}
    for name, source in sources.items():
        cursor = ledger.get_cursor(f"source:{name}")
        full = options.full
        wanted = wants_full(config, ledger, name, cursor, now) if full is None else full
        read = source.read(cursor=cursor, full=wanted)
        guard(config, name, read, stored, options.allow_shrink)
        reads[name] = read
    enrolled = vault.enrollments() if vault is not None else {}
    return desired_state(reads, stored, enrolled, ledger, now)


def wants_full(
    config: Config, ledger: Ledger, name: str, cursor: str | None, now: datetime
) -> bool:
    """Return whether source `name` is due a full read (see the module docstring)."""
    if cursor is None:
        return True
    source = config.sources.get(name)
    every_h = source.full_read_every_h if isinstance(source, LdapSourceConfig) else 0.0
    last = parse_time(ledger.get_cursor(f"source:{name}:full_at"))
    if every_h <= 0 or last is None:
        return True
    return now - last >= timedelta(hours=every_h)


def guard(
    config: Config,
    name: str,
    read: SourceRead,
    stored: PeopleIndex,
    allow_shrink: bool,
) -> None:
    """Raise SourceRefused if a full read of source `name` is empty or shrunk beyond
    `safety.max_source_shrink` against the people the ledger knows from it."""
    if not read.complete:
        # A delta names only who changed: neither empty nor small says anyone left.
        return
    known = len(stored.present_keys(name))
    seen = len(read.people) + len(read.held) + len(read.disabled)
    if known and not seen:
        raise SourceRefused(
            f"source {name} returned no one while the ledger holds {known} people: refused"
        )
    limit = config.safety.max_source_shrink
    shrink = (known - seen) / known if known else 0.0
    if shrink > limit and not allow_shrink:
        raise SourceRefused(
            f"source {name} returned {seen} people where the ledger holds {known} "
            f"({shrink:.0%} fewer, over the {limit:.0%} "
            "limit): refused; pass --allow-shrink if this is intended"
        )


def desired_state(
    reads: Mapping[str, SourceRead],
    stored: PeopleIndex,
    enrolled: Mapping[str, object],
    ledger: Ledger,
    now: datetime,
) -> Reading:
    """Return the reading of `reads`: who is present, who is gone, who newly left.

    The people a read gives are taken as they are; every other present or gone person is
    the ledger's, decoded only if asked for (`ledger.peopleindex`): a plan after a delta
    read asks for the few it decides.
    """
    keys: set[str] = set()
    given: dict[str, Person] = {}
    newly_gone: dict[str, frozenset[str]] = {}
    for name, read in reads.items():
        mine, mine_given = _present_people(name, read, stored)
        if clash := mine & keys:
            raise SourceError(f"keys returned by more than one source: {sorted(clash)[:5]}")
        keys |= mine
        given.update(mine_given)
        newly_gone[name] = frozenset(stored.present_keys(name) - mine)
    people: Mapping[str, Person] = (
        given if len(given) == len(keys) else LazyPeople(keys, given, stored)
    )
    gone = LazyPeople(stored.keys() - keys, {}, stored)
    desired = Desired(people, gone, enrolled, ledger.record_digest)  # type: ignore[arg-type]
    return Reading(desired, reads, now, newly_gone)


def _present_people(
    name: str, read: SourceRead, stored: PeopleIndex
) -> tuple[set[str], dict[str, Person]]:
    """Return who source `name` gives now — a full read's people, or the ledger's updated
    by a delta; plus the people of rows kept as they were, and those disabled — as their
    keys and the people given as they are (every other key: the ledger's person)."""
    if read.complete:
        given = dict(read.people)
        keys = set(given)
    else:
        given = {k: p for k, p in read.people.items() if k not in read.deleted}
        keys = (stored.present_keys(name) | given.keys()) - read.deleted
    stored.prefetch([*read.held, *read.disabled])  # one query, not everyone's data
    for key in read.held:
        if key in stored and key not in keys:
            keys.add(key)
            given[key] = stored.person(key)
    disabled = disabled_people(read.disabled, LazyPeople(stored.keys(), {}, stored))
    given.update(disabled)
    keys.update(disabled)
    return keys, given


def parse_time(text: str | None) -> datetime | None:
    """Return a stored ISO timestamp as an aware datetime (UTC if naive); None if unusable."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None  # unreadable: treated as "never", so the next read is full
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
