"""The plan: a pure diff of what targets should hold against what the ledger says they hold.

No I/O and no clock but the `now` given. For each target and each person:

- present in the source, selected by the target, and allowed to pass at `now` (active
  and inside the validity window: `engine.access`) → create, or update if the rendered
  record's digest differs from the one held;
- selected, active, and due to start within `create_ahead` → created (or kept) with
  access off, so the person can enroll before day one;
- otherwise (disabled in the source, outside the window, gone from the source, or no
  longer selected by the target) while the target holds an active record → disable (the
  record stays, templates too);
- disabled for at least `delete_after` → delete, but only records syncd created, never a
  protected key;
- a failed record whose retry time has not come is deferred (counted, not acted on);
- a person the target cannot render (`RecordError`, e.g. a CLUe PIN that is not digits)
  gets a note naming target, person and field, and is treated as a leaver there (fail
  closed: access switched off where the target holds it); one bad record never stops
  the plan.

Field changes shown to people are redacted here, once: a secret field's values never
leave the plan as clear text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from syncd.engine.access import staged
from syncd.engine.renders import Renders
from syncd.errors import RecordError
from syncd.model import (
    Action,
    Desired,
    FieldChange,
    HeldRecord,
    HeldTable,
    Op,
    Plan,
    Record,
    RecordState,
    TargetSummary,
)
from syncd.targets.base import Target

REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules a plan follows: grace period before deletion, keys never touched, and how
    long before their start upcoming people are created with access off."""

    delete_after: timedelta = timedelta(days=30)
    protected_keys: frozenset[str] = frozenset()
    create_ahead: timedelta = timedelta(days=14)


RecordLoader = Callable[[Iterable[tuple[str, str]]], Mapping[tuple[str, str], Record]]
"""Loads the records the ledger says targets hold, per (target, person key)."""


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """One target's share of a plan: its actions, what was left alone, and notes."""

    actions: tuple[Action, ...]
    unchanged: int
    deferred: int
    notes: tuple[str, ...]


class _Decision(NamedTuple):
    """The rule's verdict for one person on one target: the action (None: nothing to
    do), the record held if it had to be looked at, and whether the target holds one
    (`HeldRecord.present`)."""

    action: Action | None
    record: HeldRecord | None
    present: bool


_IN_STEP = _Decision(None, None, present=True)
"""A settled record whose digest is the wanted one: nothing to do."""


def compute_plan(
    desired: Desired,
    targets: Sequence[Target],
    held: Mapping[str, Mapping[str, HeldRecord]],
    policy: Policy,
    now: datetime,
    *,
    load_records: RecordLoader | None = None,
    only: frozenset[str] | None = None,
) -> Plan:
    """Return the actions that bring every target to `desired`, with a summary per target.

    `held` comes with its records (a deep view, tests), or without them (a large ledger's
    `HeldTable`s) and then `load_records` fetches the records behind the plan's actions,
    so that every action's field changes are complete either way.

    `only` (`engine.instep`): decide only these people, the others being known in step:
    each settled record of theirs is counted unchanged, as deciding them would.
    """
    renders = Renders(desired, now, diff_fields=load_records is None, only=only)
    parts = [
        (target.name, _plan_target(target, renders, _table(target.name, held), policy, now))
        for target in targets
    ]
    actions = tuple(a for _, part in parts for a in part.actions)
    if load_records is not None:
        actions = _with_held_records(actions, load_records, targets)
    return Plan(
        actions=actions,
        summaries=tuple(summarise(n, p.actions, p.unchanged, p.deferred) for n, p in parts),
        created_at=now,
        notes=tuple(note for _, part in parts for note in part.notes),
    )


def _table(name: str, held: Mapping[str, Mapping[str, HeldRecord]]) -> HeldTable:
    return HeldTable.of(name, held.get(name, {}))


def _plan_target(
    target: Target, renders: Renders, held: HeldTable, policy: Policy, now: datetime
) -> TargetPlan:
    """Return `target`'s actions: `_decide` for each person present or held, a person
    who cannot be rendered failed closed, a failed record deferred to its retry time."""
    actions: list[Action] = []
    notes: list[str] = []
    unchanged = renders.in_step_elsewhere(held, policy.protected_keys)
    deferred = 0
    step = _Pass(target, renders, held, policy, now)
    for key in renders.keys(held):
        if key in policy.protected_keys:
            continue
        try:
            decision = _decide(step, key)
        except RecordError as exc:
            decision = _fail_closed(target, renders, key, held.get(key), policy, now)
            verdict = "access switched off" if decision.action is not None else "not changed"
            notes.append(f"{target.name}: {key}: {exc.field}: {exc.message}; {verdict}")
        action, record = decision.action, decision.record
        # A failed record waits for its retry time, unless access must go now: taking
        # access away is never held back by an earlier failure (fail closed).
        if record is not None and _deferred(record, now) and not _takes_access(action):
            deferred += 1
        elif action is None:
            unchanged += decision.present
        else:
            actions.append(action)
    return TargetPlan(tuple(actions), unchanged, deferred, tuple(notes))


class _Pass:
    """What `_decide` needs for one target, looked up once per target rather than once
    per record: a large plan calls `_decide` for every person on every target."""

    __slots__ = ("active", "held", "now", "people", "policy", "renders", "settled", "target")

    def __init__(
        self, target: Target, renders: Renders, held: HeldTable, policy: Policy, now: datetime
    ) -> None:
        self.target = target
        self.renders = renders
        self.held = held
        self.policy = policy
        self.now = now
        self.people = renders.desired.people
        self.settled = held.settled_digests
        self.active = renders.shape(target, active=True)


def _takes_access(action: Action | None) -> bool:
    """True for an action that takes away access the person may still have: a disable,
    or the delete of what an unconfirmed create may have left (`_cleanup_unconfirmed`)."""
    if action is None:
        return False
    return action.op is Op.DISABLE or (action.op is Op.DELETE and action.before_digest is None)


def _deferred(record: HeldRecord, now: datetime) -> bool:
    return (
        record.state is RecordState.FAILED
        and record.next_attempt_at is not None
        and now < record.next_attempt_at
    )


def _decide(step: _Pass, key: str) -> _Decision:
    """The planner's one rule for one person on one target (see the module docstring).

    A settled record (state ok: never deferred) whose digest is the wanted one is in
    step without being looked at: the common case of a large plan builds no HeldRecord.
    """
    target, renders, held = step.target, step.renders, step.held
    person = step.people.get(key)
    if person is not None and target.selects(person):
        if renders.may_pass(person):
            shape = step.active
            found = shape.get(key) or renders.cached(shape, target, person, True)
            if step.settled.get(key) == found[1]:
                return _IN_STEP
            record = held.get(key)
            action = _converge_active(target, key, record, *found, renders.diff_fields)
            return _Decision(action, record, _present(record))
        if staged(person, step.now, step.policy.create_ahead):
            wanted, wanted_digest = renders.get(target, person, active=False)
            record = held.get(key)
            action = _converge_staged(
                target, key, record, wanted, wanted_digest, renders.diff_fields
            )
            return _Decision(action, record, _present(record))
    record = held.get(key)
    action = _leaver(target, renders, key, record, step.policy, step.now)
    return _Decision(action, record, _present(record))


def _present(record: HeldRecord | None) -> bool:
    return record is not None and record.present


def _fail_closed(
    target: Target,
    renders: Renders,
    key: str,
    held: HeldRecord | None,
    policy: Policy,
    now: datetime,
) -> _Decision:
    """Return the leaver's action for a person whose record cannot be rendered: such a
    person keeps no access (None if the target cannot render even their disabled record)."""
    try:
        action = _leaver(target, renders, key, held, policy, now)
    except RecordError:
        action = None
    return _Decision(action, held, _present(held))


def _leaver(
    target: Target,
    renders: Renders,
    key: str,
    held: HeldRecord | None,
    policy: Policy,
    now: datetime,
) -> Action | None:
    """Return the action that takes a person's access away on `target` (None: nothing
    held, or already off and not yet due for deletion)."""
    if held is None:
        return None
    if not held.present:
        return _cleanup_unconfirmed(target, key, held)
    person = renders.desired.people.get(key)
    last = person if person is not None else renders.desired.gone[key]
    wanted, wanted_digest = renders.get(target, last, active=False)
    return _converge_leaver(
        target, key, held, wanted, wanted_digest, policy, now, renders.diff_fields
    )


def _cleanup_unconfirmed(target: Target, key: str, held: HeldRecord) -> Action | None:
    """Delete at once what a create may have left on a target for a person now gone.

    A create whose outcome never reached the ledger (pending: the process died; failed:
    say a timeout after the target had already acted) may have given the person access.
    A leaver must not keep it until some later run: the target is cleared now (deleting
    a user that is not there counts as done). A cleanup a safety cap blocked stays due
    (blocked: the only removal a record never confirmed can have): forgetting it would
    leave the leaver's access on the target while the plan says "in step".
    """
    if held.state not in {RecordState.PENDING, RecordState.FAILED, RecordState.BLOCKED}:
        return None
    return _action(target, key, Op.DELETE, {}, "", held, active=False)


def _converge_active(
    target: Target,
    key: str,
    held: HeldRecord | None,
    wanted: Record,
    wanted_digest: str,
    diff: bool,
) -> Action | None:
    if held is None or not held.present:
        return _action(target, key, Op.CREATE, wanted, wanted_digest, held)
    if held.digest == wanted_digest:
        return None
    return _action(target, key, Op.UPDATE, wanted, wanted_digest, held, diff=diff)


def _converge_staged(
    target: Target,
    key: str,
    held: HeldRecord | None,
    wanted: Record,
    wanted_digest: str,
    diff: bool,
) -> Action | None:
    """Hold an upcoming person's record with access off: created ahead of their start,
    or taken back to no access (a DISABLE, capped like any removal) if a target still
    lets them through (their start moved into the future)."""
    if held is None or not held.present:
        return _action(target, key, Op.CREATE, wanted, wanted_digest, held, active=False)
    if held.digest == wanted_digest:
        return None
    op = Op.DISABLE if _held_active(target, held) else Op.UPDATE
    return _action(target, key, op, wanted, wanted_digest, held, active=False, diff=diff)


def _held_active(target: Target, held: HeldRecord) -> bool:
    """Return True if the record `held` lets its person through."""
    # The ledger sets disabled_since exactly when it stores an inactive record, so a plan
    # that did not load the records (large ledgers) still knows which ones are active.
    if held.record is not None:
        return target.is_active(held.record)
    return held.disabled_since is None


def _converge_leaver(
    target: Target,
    key: str,
    held: HeldRecord,
    wanted: Record,
    wanted_digest: str,
    policy: Policy,
    now: datetime,
    diff: bool,
) -> Action | None:
    if _held_active(target, held):
        return _action(
            target, key, Op.DISABLE, wanted, wanted_digest, held, active=False, diff=diff
        )
    since = held.disabled_since
    due = since is not None and now - since >= policy.delete_after
    if held.created_by_syncd and due and held.digest is not None:
        last = held.record if held.record is not None else {}
        return _action(target, key, Op.DELETE, last, held.digest, held, active=False, diff=diff)
    return None


def _action(
    target: Target,
    key: str,
    op: Op,
    record: Record,
    after_digest: str,
    held: HeldRecord | None,
    *,
    active: bool = True,
    diff: bool = True,
) -> Action:
    """Return the action; without `diff`, its field changes are left to
    `_with_held_records` (a record the target holds was not loaded: see `compute_plan`)."""
    before = held.record if held is not None else None
    shown_after = None if op is Op.DELETE else record
    changes = field_changes(before, shown_after, target.secret_fields) if diff else ()
    return Action(
        target=target.name,
        person_key=key,
        op=op,
        record=record,
        after_digest=after_digest,
        before_digest=held.digest if held is not None else None,
        remote_id=held.remote_id if held is not None else None,
        changes=changes,
        active_after=active,
        attempts=held.attempts if held is not None else 0,
    )


def _with_held_records(
    actions: Sequence[Action], load_records: RecordLoader, targets: Sequence[Target]
) -> tuple[Action, ...]:
    """Return `actions` with the field changes of every action on a record the target
    holds (`before_digest` set) computed from the records `load_records` finds, and a
    delete's last record taken there (a record not found: changes against nothing)."""
    records = load_records([(a.target, a.person_key) for a in actions if a.before_digest])
    secrets = {t.name: t.secret_fields for t in targets}
    # Ten terminals configured alike share one record object per person, before (shared
    # by `Ledger.load_records`) and after (rendered once): their changes are computed once.
    # Keyed by identity, which is exact while `records` and `actions` keep the objects alive.
    memo: dict[tuple[int, int, frozenset[str]], tuple[FieldChange, ...]] = {}
    completed = []
    for action in actions:
        if action.before_digest is None:
            completed.append(action)  # nothing held: its changes were computed by the plan
            continue
        before = records.get((action.target, action.person_key))
        deleting = action.op is Op.DELETE
        record = before if deleting and before is not None else action.record
        after = None if deleting else action.record
        secret = secrets[action.target]
        memo_key = (id(before), id(after), secret)
        changes = memo.get(memo_key)
        if changes is None:
            changes = memo[memo_key] = field_changes(before, after, secret)
        completed.append(dataclasses.replace(action, record=record, changes=changes))
    return tuple(completed)


def field_changes(
    before: Record | None, after: Record | None, secret_fields: frozenset[str]
) -> tuple[FieldChange, ...]:
    """Return the fields that differ between two records, secret values redacted."""
    old = before or {}
    new = after or {}
    # A large plan calls this once per action: sort only the few names that differ, and
    # compare records of one shape (the usual case) without looking names up twice.
    if old.keys() == new.keys():
        differing = [name for name in new if old[name] != new[name]]
    else:
        differing = [name for name in old.keys() | new.keys() if old.get(name) != new.get(name)]
    differing.sort()
    result = []
    for name in differing:
        if name in secret_fields:
            result.append(FieldChange(name, _redact(old.get(name)), _redact(new.get(name))))
        else:
            result.append(FieldChange(name, old.get(name), new.get(name)))
    return tuple(result)


def _redact(value: object) -> str | None:
    return None if value in (None, "", [], {}) else REDACTED


def summarise(
    target: str, actions: Sequence[Action], unchanged: int, deferred: int
) -> TargetSummary:
    """Return the counts of one target's actions (blocked ones counted apart)."""
    counts = dict.fromkeys(Op, 0)
    blocked = 0
    for action in actions:
        if action.blocked is None:
            counts[action.op] += 1
        else:
            blocked += 1
    return TargetSummary(
        target=target,
        create=counts[Op.CREATE],
        update=counts[Op.UPDATE],
        disable=counts[Op.DISABLE],
        delete=counts[Op.DELETE],
        blocked=blocked,
        unchanged=unchanged,
        deferred=deferred,
    )
