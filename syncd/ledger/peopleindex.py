"""The ledger's people as a plan after a delta read needs them: keys first, data on demand.

A delta read names a few people; the plan decides only the people who may have moved
(`engine.instep`). Loading and decoding all 100 000 stored people to learn who is present
cost more than everything else such a plan does. `PeopleIndex` holds the keys only — all
of them, and each source's present (not gone) ones — read in one light query; a person's
data is decoded when asked for: those `prefetch` names in one query, and on the first
person asked for without it, everyone not yet loaded in one query (so a caller that walks
everyone pays what loading everyone always cost, never a query per person).
`window_keys` finds, by index, the people whose validity window starts or ends in a
span: those time alone may move.
`LazyPeople` is the key → Person mapping a `Desired` is built of on top of it;
`StoredPerson`, one person as `Ledger.load_people` returns them, decodes its data lazily too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Set
from datetime import datetime

from syncd.ledger.pins import PinKeys, open_json, person_aad
from syncd.model import Person, person_from_json

PersonLoader = Callable[[Collection[str] | None], Mapping[str, "StoredPerson"]]
"""Loads the stored people of the given keys (None: all of them)."""

WindowFinder = Callable[[tuple[datetime, datetime], tuple[datetime, datetime]], set[str]]
"""Keys of the people whose `valid_from` lies in the first span (lo, hi] or whose
`valid_until` lies in the second."""


class StoredPerson:
    """A person as the ledger last saw them; `gone_since` is set once the source lost them.

    `person` is decoded from the stored JSON (its PIN opened) on first use only: a plan
    after a full read needs the stored person of few people (those kept as they were,
    disabled or gone), and decoding all of them cost most of loading them. A sealed PIN
    that cannot be opened raises LedgerError there.
    """

    __slots__ = ("_person", "_stored", "digest", "gone_since", "source")

    def __init__(
        self,
        person: Person | None = None,
        digest: str = "",
        source: str = "",
        gone_since: datetime | None = None,
        *,
        stored: tuple[str, str, PinKeys | None] | None = None,
    ) -> None:
        if person is None and stored is None:
            raise ValueError("StoredPerson needs the person or its stored (key, data, pins)")
        self.digest = digest
        self.source = source
        self.gone_since = gone_since
        self._person = person
        self._stored = stored

    @property
    def person(self) -> Person:
        """The person as stored (decoded once, on first use)."""
        if self._person is None:
            assert self._stored is not None  # one of the two is always given
            key, data, pins = self._stored
            self._person = person_from_json(open_json(data, pins, person_aad(key)))
            self._stored = None
        return self._person


class PeopleIndex:
    """Every person the ledger holds, by key, with the source's present people apart;
    data loaded on demand (see the module docstring)."""

    def __init__(
        self,
        keys: Set[str],
        present: Mapping[str, Set[str]],
        load: PersonLoader,
        find_windows: WindowFinder,
    ) -> None:
        self._keys = keys
        self._present = present
        self._load = load
        self._find_windows = find_windows
        self._people: dict[str, StoredPerson] = {}
        self._all_loaded = False

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> Set[str]:
        """Every key the ledger holds, gone people included."""
        return self._keys

    def present_keys(self, source: str) -> Set[str]:
        """The keys `source` last gave and has not lost since."""
        return self._present.get(source, frozenset())

    def person(self, key: str) -> Person:
        """Return the stored person `key` (KeyError if the ledger holds none)."""
        found = self._people.get(key)
        if found is None:
            if key not in self._keys or self._all_loaded:
                raise KeyError(key)
            # Asked for without a prefetch: everyone's data at once (each decoded when
            # asked for), rather than one query per person of a caller walking them all.
            self._all_loaded = True
            loaded = self._load(None)
            self._people.update((k, p) for k, p in loaded.items() if k not in self._people)
            found = self._people[key]
        return found.person

    def prefetch(self, keys: Iterable[str]) -> None:
        """Load the stored people of `keys` (those the ledger holds) in one query."""
        missing = [k for k in keys if k in self._keys and k not in self._people]
        if missing and not self._all_loaded:
            self._people.update(self._load(missing))

    def window_keys(
        self, starts: tuple[datetime, datetime], ends: tuple[datetime, datetime]
    ) -> set[str]:
        """Return the keys whose stored window starts in `starts` (lo, hi] or ends in
        `ends` (lo, hi] (`WindowFinder`)."""
        return self._find_windows(starts, ends)


class LazyPeople(Mapping[str, Person]):
    """key → Person over `keys`: the people `given` as they are, every other key the
    ledger's stored person (`PeopleIndex.person`), decoded when first asked for."""

    __slots__ = ("_given", "_index", "_keys")

    def __init__(self, keys: Set[str], given: Mapping[str, Person], index: PeopleIndex) -> None:
        self._keys = keys
        self._given = given
        self._index = index

    @property
    def index(self) -> PeopleIndex:
        """The ledger's people this mapping reads the others from."""
        return self._index

    @property
    def given(self) -> Mapping[str, Person]:
        """The people given as they are (a delta's people, those disabled by a defect)."""
        return self._given

    def __getitem__(self, key: str) -> Person:
        found = self._given.get(key)
        if found is not None:
            return found
        if key not in self._keys:
            raise KeyError(key)
        return self._index.person(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> Set[str]:  # type: ignore[override]
        """The keys, as a set (set arithmetic in C on a large plan)."""
        return self._keys


def prefetch(people: Mapping[str, Person], keys: Iterable[str]) -> None:
    """Load in one query the stored people of `keys` that `people` will be asked for
    (nothing to do unless `people` is a `LazyPeople`)."""
    if isinstance(people, LazyPeople):
        people.index.prefetch(keys)
