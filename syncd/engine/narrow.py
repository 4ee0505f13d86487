"""Narrowing a plan: to one person, without quarantined targets, to a saved plan's actions.

Each function returns a new Plan whose summaries are recounted from its actions, so the
reports and `--check` always agree with what an apply would execute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection

from syncd.engine.plan import summarise
from syncd.model import Action, Plan, TargetSummary

ActionKey = tuple[str, str, str]
"""(target, person key, op): how a saved plan names an action."""


def action_key(action: Action) -> ActionKey:
    """Return the (target, person, op) naming `action` in a saved plan."""
    return (action.target, action.person_key, action.op.value)


def _rebuild(
    plan: Plan, keep: Callable[[Action], bool], extra_deferred: Callable[[TargetSummary, int], int]
) -> Plan:
    actions: list[Action] = []
    summaries = []
    for summary in plan.summaries:
        mine = list(plan.for_target(summary.target))
        kept = [a for a in mine if keep(a)]
        dropped = len(mine) - len(kept)
        deferred = summary.deferred + extra_deferred(summary, dropped)
        actions.extend(kept)
        summaries.append(summarise(summary.target, kept, summary.unchanged, deferred))
    return dataclasses.replace(plan, actions=tuple(actions), summaries=tuple(summaries))


def only_person(plan: Plan, person_key: str) -> Plan:
    """Return the part of `plan` that concerns one person (counts of others dropped)."""
    narrowed = _rebuild(plan, lambda a: a.person_key == person_key, lambda s, n: 0)
    summaries = tuple(dataclasses.replace(s, unchanged=0, deferred=0) for s in narrowed.summaries)
    return dataclasses.replace(narrowed, summaries=summaries)


def defer_targets(plan: Plan, deferred_targets: Collection[str], why: str) -> Plan:
    """Return `plan` with every action of `deferred_targets` held over (counted as deferred)."""
    if not deferred_targets:
        return plan
    narrowed = _rebuild(plan, lambda a: a.target not in deferred_targets, lambda s, n: n)
    notes = tuple(f"{t}: {why}" for t in sorted(deferred_targets))
    return dataclasses.replace(narrowed, notes=plan.notes + notes)


def restrict_to(plan: Plan, approved: Collection[ActionKey]) -> tuple[Plan, list[ActionKey]]:
    """Return `plan` limited to the approved actions, and the approved ones it lacks."""
    wanted = set(approved)
    narrowed = _rebuild(plan, lambda a: action_key(a) in wanted, lambda s, n: 0)
    present = {action_key(a) for a in plan.actions}
    return narrowed, sorted(wanted - present)
