"""The plan's renders: each person rendered once per kind of target configuration.

`Renders` belongs to `plan.compute_plan` (one per plan); it lives apart to keep that
module readable.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Hashable, Mapping
from datetime import datetime

from syncd.engine.access import may_pass
from syncd.model import Desired, HeldRecord, HeldTable, Person, Record, Status
from syncd.targets.base import Target


class Renders:
    """Each person rendered once per kind of target configuration, with its digest.

    Ten terminals configured alike hold the same record for a person: rendering and
    hashing it once instead of ten times is most of a large plan's cost. Also holds
    what every target's pass shares: the people's keys, sorted once, and who may pass
    at the plan's `now`.
    """

    def __init__(
        self,
        desired: Desired,
        now: datetime,
        diff_fields: bool = True,
        only: frozenset[str] | None = None,
    ) -> None:
        self.desired = desired
        self.now = now
        self.diff_fields = diff_fields
        self.only = only
        people = desired.people.keys() if only is None else only & desired.people.keys()
        self.sorted_people = sorted(people)
        self._shapes: dict[tuple[Hashable, bool], dict[str, tuple[Record, str]]] = {}
        self._passes: dict[str, bool] = {}

    def shape(self, target: Target, active: bool) -> dict[str, tuple[Record, str]]:
        """Return the cache (person key → record, digest) of `target`'s configuration."""
        key = (target.render_key, active)
        found = self._shapes.get(key)  # no empty dict built per call: a plan calls this per record
        return found if found is not None else self._shapes.setdefault(key, {})

    def may_pass(self, person: Person) -> bool:
        """`access.may_pass` at the plan's `now`, decided once per person (a plan asks
        it of each person on each target)."""
        found = self._passes.get(person.key)
        if found is None:
            found = self._passes[person.key] = may_pass(person, self.now)
        return found

    def get(self, target: Target, person: Person, active: bool) -> tuple[Record, str]:
        """Return (record, digest) of `person` on `target`, disabled unless `active`."""
        return self.cached(self.shape(target, active), target, person, active)

    def cached(
        self, shape: dict[str, tuple[Record, str]], target: Target, person: Person, active: bool
    ) -> tuple[Record, str]:
        """`get`, given the `shape` cache of `target` (looked up once per target)."""
        found = shape.get(person.key)
        if found is None:
            shown = person if active else dataclasses.replace(person, status=Status.DISABLED)
            record = target.render(shown, self.desired.enrollments.get(person.key, ()))
            found = shape[person.key] = (record, self.desired.digest_of(record))
        return found

    def keys(self, held: Mapping[str, HeldRecord]) -> list[str]:
        """Return, sorted, the people present and the gone people `held` still has."""
        desired, only = self.desired, self.only
        people, gone_people = desired.people, desired.gone
        maybe = gone_people if only is None else (k for k in only if k in gone_people)
        gone = sorted(k for k in maybe if k in held and k not in people)
        return list(heapq.merge(self.sorted_people, gone)) if gone else self.sorted_people

    def in_step_elsewhere(self, held: HeldTable, protected: frozenset[str]) -> int:
        """Return how many records of `held` belong to people left out by `only` (known
        in step: see `engine.instep`): those `keys` would have listed, settled, so held
        and counted unchanged. 0 without `only`."""
        only = self.only
        if only is None:
            return 0
        people, gone = self.desired.people, self.desired.gone
        settled = held.settled_digests
        if held.complete:
            # Set arithmetic in C rather than a loop over every record: the settled records
            # of known people, less those of the few people decided or protected.
            known = len(settled) - len(settled.keys() - people.keys() - gone.keys())
        else:
            # A partial table (`engine.instep`) counts its settled records; each is of a
            # person the ledger knows: made for a person saved first, and a person leaves
            # the ledger only once no target holds a record of theirs (`ledger.purge`).
            known = held.settled_count
        decided = sum(1 for k in only | protected if k in settled and (k in people or k in gone))
        return known - decided
