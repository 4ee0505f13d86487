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
`LazyPeople` is the key → Person mapping a `Desired` is built of on top of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Set
from datetime import datetime

from syncd.model import Person

PersonLoader = Callable[[Collection[str] | None], Mapping[str, Person]]
"""Loads the stored people of the given keys (None: all of them), PINs opened."""

WindowFinder = Callable[[tuple[datetime, datetime], tuple[datetime, datetime]], set[str]]
"""Keys of the people whose `valid_from` lies in the first span (lo, hi] or whose
`valid_until` lies in the second."""


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
        self._people: dict[str, Person] = {}
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
        if found is not None:
            return found
        if key not in self._keys:
            raise KeyError(key)
        if not self._all_loaded:
            self._all_loaded = True
            loaded = self._load(None)
            self._people.update((k, p) for k, p in loaded.items() if k not in self._people)
        return self._people[key]

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
