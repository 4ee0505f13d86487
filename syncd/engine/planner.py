"""The planner: a reading + the ledger's view of the targets + the run's `now` → a Plan.

`plan.compute_plan` is the pure diff; this module gathers what it needs and adds what
the site's safety rules say about it, in order:

1. the held records: digests only for an ordinary plan (a million rows stay light; the
   records behind its actions are fetched for their field changes), whole records and the
   targets' own answers for a deep plan (`engine.deep`: drift repaired, orphans found);
2. the removal caps (`engine.capping`), with the removals an administrator released;
3. quarantine: a resting target's actions are deferred until its slow retry time;
4. card moves (`engine.cards`): each target's actions in apply order, a card freed
   before it is given;
5. the access boundaries of the next `access.upcoming_days` (for reports).

Every decision is taken at the reading's `now`: one clock reading per run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from syncd.config import Config, Ef45TargetConfig
from syncd.engine import instep
from syncd.engine.access import upcoming_on_targets
from syncd.engine.capping import cap_removals
from syncd.engine.cards import with_card_moves
from syncd.engine.deep import DeepView, look, record_orphans, with_orphan_deletes
from syncd.engine.health import resting_targets
from syncd.engine.narrow import defer_targets
from syncd.engine.plan import Policy, compute_plan
from syncd.engine.reader import Reading
from syncd.ledger.store import Ledger
from syncd.model import Boundary, Desired, Plan, Record
from syncd.targets.base import Target


@dataclass(frozen=True)
class PlanOptions:
    """What one plan is asked: `allow_deletes` removals released past the caps,
    `released` (target, person) removals approved, `deep` to observe the targets first,
    `findings` (with `deep`) to record the orphans found in the ledger; `incremental`
    False decides everyone even after delta reads (`engine.instep`)."""

    allow_deletes: int | None = None
    released: frozenset[tuple[str, str]] = frozenset()
    deep: bool = False
    findings: bool = False
    incremental: bool = True


def policy_of(config: Config) -> Policy:
    """Return the plan's rules as the configuration sets them."""
    return Policy(
        delete_after=timedelta(days=config.safety.delete_after_days),
        protected_keys=frozenset(config.safety.protected_keys),
        create_ahead=timedelta(days=config.access.create_ahead_days),
    )


def make_plan(
    config: Config,
    ledger: Ledger,
    targets: Mapping[str, Target],
    reading: Reading,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """Return the plan for `reading` against the ledger (see the module docstring)."""
    now, policy = reading.now, policy_of(config)
    incremental = options.incremental and not options.deep
    only = due_people(config, ledger, targets, reading) if incremental else None
    if only is not None:  # the records of the people decided, and counts (`engine.instep`)
        held = ledger.load_held_of(only | policy.protected_keys)
    else:
        held = ledger.load_held(with_records=options.deep)
    deadline_s = config.apply.target_deadline_s
    view = look(targets, held, reading.desired, deadline_s) if options.deep else None
    seen = _Loaded(ledger)
    plan = compute_plan(
        reading.desired,
        list(targets.values()),
        view.held if view else held,
        policy,
        now,
        load_records=None if view else seen,
        only=only,
    )
    if view is not None:
        plan = _with_deep_view(config, ledger, targets, plan, view, policy, options.findings)
        if options.findings:
            record_orphans(ledger.db, view, now)
    capped = cap_removals(plan, held, config.safety, ledger.db, now,
                          allow_deletes=options.allow_deletes,
                          released=options.released)  # fmt: skip
    resting = resting_targets(ledger.db, targets, now=now,
                              retry_s=config.apply.quarantine_retry_s)  # fmt: skip
    deferred = defer_targets(capped, resting, "quarantined: retried slowly")
    moved = with_card_moves(deferred, targets, view.held if view else held, seen.found,
                            ledger.load_records, ledger.record_digest)  # fmt: skip
    return dataclasses.replace(moved, upcoming=upcoming(config, targets, reading.desired, reading))


def due_people(
    config: Config, ledger: Ledger, targets: Mapping[str, Target], reading: Reading
) -> frozenset[str] | None:
    """Return the people a plan of `reading` must decide when the in-step mark allows
    deciding only those (`engine.instep`), else None (decide everyone)."""
    if not instep.all_deltas(reading):
        return None
    mark = instep.fingerprint(config, targets, reading.desired)
    since = instep.marked_at(ledger, mark, reading.now)
    if since is None:
        return None
    return instep.due_keys(reading, ledger.unsettled_keys(), policy_of(config), since)


def upcoming(
    config: Config, targets: Mapping[str, Target], desired: Desired, reading: Reading
) -> tuple[Boundary, ...]:
    """Return the access boundaries of the next `access.upcoming_days`, in the site's zone."""
    access, now = config.access, reading.now
    until = now + timedelta(days=access.upcoming_days)
    ahead = timedelta(days=access.create_ahead_days)
    slack = timedelta(days=1)  # `instep.with_windows`: a superset, the exact test below
    starts, ends = (now - slack, until + ahead + slack), (now - slack, until + slack)
    people = instep.with_windows(desired.people, starts, ends)
    found = upcoming_on_targets(people, list(targets.values()), now, until, ahead)
    zone = ZoneInfo(access.time_zone)
    return tuple(dataclasses.replace(b, at=b.at.astimezone(zone)) for b in found)


def _with_deep_view(
    config: Config,
    ledger: Ledger,
    targets: Mapping[str, Target],
    plan: Plan,
    view: DeepView,
    policy: Policy,
    findings: bool,
) -> Plan:
    """Add the orphan deletes (targets with orphans = "delete") and the deep notes."""
    deleting = {
        name for name, c in config.targets.items()
        if isinstance(c, Ef45TargetConfig) and c.orphans == "delete"
    }  # fmt: skip
    plan = with_orphan_deletes(plan, view, targets, deleting, policy.protected_keys,
                               ledger.record_digest)  # fmt: skip
    notes = (*plan.notes, *view.notes(deleting))
    return dataclasses.replace(plan, notes=notes, unobserved=dict(view.failed))


class _Loaded:
    """`Ledger.load_records`, keeping what it found for the card moves to reuse."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.found: dict[tuple[str, str], Record] = {}

    def __call__(self, keys: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], Record]:
        loaded = self._ledger.load_records(keys)
        self.found.update(loaded)
        return loaded
