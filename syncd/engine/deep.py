"""Deep reconcile: plan from what the terminals really hold, not only from the ledger.

An ordinary plan trusts the ledger. A deep plan first observes every target that can be
observed (`targets.base.Observable.observe()`, targets in parallel) and turns the
observations into adjusted held records, so that the ordinary pure plan
(`plan.compute_plan`) plans the repairs:

- held by the ledger, absent from the terminal → held as absent: the plan re-creates it
  (or does nothing for a leaver, who must not be re-created);
- observed record differs from the ledger's → held with the observed record and digest:
  the plan updates it back (or disables it, for a leaver let back in by hand);
- on the terminal, unknown to the ledger for that target, but a person syncd would put
  there (active, selected) → adopted: held with the observed record and
  `created_by_syncd=False`, so the plan updates it and never deletes it later;
- anything else on the terminal the ledger never created → an orphan: reported (and
  recorded as a finding by apply); deleted only where the target's config says
  `orphans = "delete"`, as DELETE actions added to the plan before the removal caps (so
  the caps hold them back like any removal). Protected keys are never deleted.

A target whose observation fails is reported and planned from the ledger alone: no
observation, no orphan, so an observation failure can never cause a delete.

A target may say what of an observation is comparable with its held record
(`Comparable.comparable`): an EF-45 leaves out templates the ledger holds none of for
that terminal (syncd never removes them by an update, so they are no difference),
and the comparison then converges: a second deep run has nothing to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

import sqlalchemy as sa

from syncd.engine import stopping
from syncd.engine.plan import field_changes, summarise
from syncd.errors import cut
from syncd.ledger.findings import sync_findings
from syncd.model import (
    Action,
    Desired,
    Digest,
    HeldRecord,
    Op,
    Plan,
    Record,
    RecordState,
    Status,
    digest,
)
from syncd.targets.base import Observable, Target

HeldMap = Mapping[str, Mapping[str, HeldRecord]]
NOTE_KEYS = 10


@runtime_checkable
class Comparable(Protocol):
    """A target whose observed records hold parts its held records may lack."""

    def comparable(self, observed: Record, held: Record | None) -> Record:
        """Return the part of `observed` to compare with the `held` record."""
        ...


@dataclass(frozen=True, slots=True)
class Observation:
    """One target's observation: `records` when complete, else the `error`."""

    target: str
    records: Mapping[str, Record] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Orphan:
    """A user on a target that the ledger never created there."""

    target: str
    key: str
    record: Record


@dataclass(frozen=True)
class DeepView:
    """Held records adjusted by the observations, and what the look found."""

    held: dict[str, dict[str, HeldRecord]]
    orphans: tuple[Orphan, ...] = ()
    missing: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    altered: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    adopted: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    failed: Mapping[str, str] = dataclasses.field(default_factory=dict)
    observed: frozenset[str] = frozenset()

    def orphans_of(self, target: str) -> dict[str, Record]:
        """Return key → observed record of the orphans on `target`."""
        return {o.key: o.record for o in self.orphans if o.target == target}

    def notes(self, deleting: Collection[str] = ()) -> tuple[str, ...]:
        """Return one line per finding, for the report (`deleting`: orphans = "delete")."""
        lines = [f"{t}: observation failed, planned from the ledger only: {e}"
                 for t, e in sorted(self.failed.items())]  # fmt: skip
        for label, found in (
            ("missing from the terminal (re-created if wanted)", self.missing),
            ("altered on the terminal (repaired if wanted)", self.altered),
            ("found on the terminal and adopted", self.adopted),
        ):
            lines += [f"{t}: {len(k)} {label}: {_keys(k)}" for t, k in sorted(found.items()) if k]
        for target in sorted(self.observed):
            keys = sorted(self.orphans_of(target))
            if keys:
                fate = 'deleted (orphans = "delete")' if target in deleting else "reported only"
                lines.append(f"{target}: {len(keys)} orphan(s) syncd never created, {fate}: "
                             f"{_keys(keys)}")  # fmt: skip
        return tuple(lines)


def _keys(keys: Collection[str]) -> str:
    shown = sorted(keys)[:NOTE_KEYS]
    more = len(keys) - len(shown)
    return ", ".join(shown) + (f" … and {more} more" if more > 0 else "")


async def observe_targets(
    targets: Mapping[str, Target], deadline_s: float | None = None
) -> dict[str, Observation]:
    """Observe every observable target in parallel; a failure becomes an error Observation.

    Each target's look ends after `deadline_s` (the per-target run deadline; None: no
    limit of its own), so one slow terminal never holds up the others' plans for long.
    Targets that cannot be observed (no `observe`) are left out.
    """
    observable = {n: t for n, t in targets.items() if isinstance(t, Observable)}

    async def one(name: str, target: Observable) -> Observation:
        try:
            records = await asyncio.wait_for(target.observe(), timeout=deadline_s)
            return Observation(name, records=dict(records))
        except TimeoutError:
            return Observation(name, error=f"no complete answer within {deadline_s:g} s "
                                           "(apply.target_deadline_s)")  # fmt: skip
        except Exception as exc:  # any failure: plan this target from the ledger alone
            return Observation(name, error=cut(f"{type(exc).__name__}: {exc}"))

    found = await asyncio.gather(*(one(n, t) for n, t in observable.items()))
    return {o.target: o for o in found}


def look(
    targets: Mapping[str, Target],
    held: HeldMap,
    desired: Desired,
    deadline_s: float | None = None,
) -> DeepView:
    """Observe the targets (in parallel, on a fresh event loop, each within `deadline_s`)
    and return the deep view."""
    looking = observe_targets(targets, deadline_s)
    observations = stopping.run(looking, what="the deep look")
    return deep_view(observations, held, desired, targets)


def record_orphans(db: sa.Engine, view: DeepView, now: datetime) -> None:
    """Record the orphans of every completely observed target as "orphan" findings
    (resolving those no longer there); failed targets are left as they were."""
    for target in sorted(view.observed):
        seen = {
            key: f"on the terminal, not created by syncd: {_name(record)}".strip()
            for key, record in view.orphans_of(target).items()
        }
        sync_findings(db, kind="orphan", target=target, seen=seen, now=now)


def _name(record: Record) -> str:
    return " ".join(str(record.get(f) or "") for f in ("first_name", "last_name")).strip()


def deep_view(
    observations: Mapping[str, Observation],
    held: HeldMap,
    desired: Desired,
    targets: Mapping[str, Target],
) -> DeepView:
    """Given the observations and the ledger's held records, return the adjusted view.

    Targets without a complete observation keep the ledger's records unchanged.
    """
    adjusted = {t: dict(recs) for t, recs in held.items()}
    view = DeepView(held=adjusted)
    parts: dict[str, dict[str, tuple[str, ...]]] = {"missing": {}, "altered": {}, "adopted": {}}
    orphans: list[Orphan] = []
    failed: dict[str, str] = {}
    for name, seen in observations.items():
        if seen.records is None or name not in targets:
            failed[name] = seen.error or "no observation"
            continue
        mine = adjusted.setdefault(name, {})
        found = _adjust_target(targets[name], seen.records, mine, desired)
        for label, keys in found.items():
            if label == "orphans":
                orphans += [Orphan(name, k, seen.records[k]) for k in keys]
            else:
                parts[label][name] = keys
    complete = frozenset(n for n, o in observations.items() if n not in failed)
    return dataclasses.replace(
        view,
        orphans=tuple(orphans),
        missing=parts["missing"],
        altered=parts["altered"],
        adopted=parts["adopted"],
        failed=failed,
        observed=complete,
    )


def _adjust_target(
    target: Target, observed: Mapping[str, Record], held: dict[str, HeldRecord], desired: Desired
) -> dict[str, tuple[str, ...]]:
    """Adjust one target's held records in place; return the keys by what was found."""
    found: dict[str, list[str]] = {"missing": [], "altered": [], "adopted": [], "orphans": []}
    for key, record in list(held.items()):
        if key not in observed:
            if record.present:
                held[key] = dataclasses.replace(record, digest=None, record=None)
                found["missing"].append(key)
            continue
        seen = _comparable(target, observed[key], record.record)
        seen_digest = desired.digest_of(seen)
        if seen_digest != record.digest:
            held[key] = dataclasses.replace(record, digest=seen_digest, record=seen)
            found["altered"].append(key)
    for key in sorted(set(observed) - set(held)):
        if _wanted(target, desired, key):
            held[key] = HeldRecord(
                target=target.name, person_key=key, state=RecordState.OK,
                digest=desired.digest_of(observed[key]), record=observed[key],
                created_by_syncd=False,
            )  # fmt: skip
            found["adopted"].append(key)
        else:
            found["orphans"].append(key)
    return {label: tuple(keys) for label, keys in found.items()}


def _comparable(target: Target, observed: Record, held: Record | None) -> Record:
    if isinstance(target, Comparable):
        return target.comparable(observed, held)
    return observed


def _wanted(target: Target, desired: Desired, key: str) -> bool:
    person = desired.people.get(key)
    return person is not None and person.status is Status.ACTIVE and target.selects(person)


def with_orphan_deletes(
    plan: Plan,
    view: DeepView,
    targets: Mapping[str, Target],
    deleting: Collection[str],
    protected: Collection[str] = (),
    digest_of: Digest = digest,
) -> Plan:
    """Return `plan` plus a DELETE for every orphan on a target in `deleting` (its
    digests made by `digest_of`).

    The ledger holds no record of an orphan: its delete carries `created_by_syncd=False`
    semantics (the ledger's outcome writer adds no target record for it), before and
    after digests are the observed record's. Protected keys are left alone.
    """
    extra = [
        _orphan_delete(targets[o.target], o, digest_of)
        for o in view.orphans
        if o.target in deleting and o.target in targets and o.key not in protected
    ]
    if not extra:
        return plan
    actions = [*plan.actions, *extra]
    summaries = [
        summarise(
            s.target,
            [a for a in actions if a.target == s.target],
            s.unchanged,
            s.deferred,
        )
        for s in plan.summaries
    ]
    return dataclasses.replace(plan, actions=tuple(actions), summaries=tuple(summaries))


def _orphan_delete(target: Target, orphan: Orphan, digest_of: Digest) -> Action:
    seen = digest_of(orphan.record)
    return Action(
        target=orphan.target,
        person_key=orphan.key,
        op=Op.DELETE,
        record=orphan.record,
        after_digest=seen,
        before_digest=seen,
        changes=field_changes(orphan.record, None, target.secret_fields),
        active_after=False,
    )
