"""The order in which one target's actions are applied (pure).

A target applies its actions one at a time, in plan order, and that order is chosen here:

- Removals first (disables and deletes), then updates, then creates, each group in plan
  order: a leaver's access is taken away before anything else of the run, never behind a
  long batch of creates or a record that keeps failing.
- A card is freed before it is given: an action that gives a person a card another
  person holds now waits for the action that takes the card from them (an EF-45 refuses
  a card another user holds). Only a record without the card, or a delete, frees it: a
  disabled EF-45 user still holds their card.
- A cycle of card moves (A gets B's card while B gets A's) is broken by an extra update
  before it: one person first gets their new record without the cards they gain, which
  frees their old card; the others follow, and then that person's full record.

`order_actions` needs to know the cards of a record (`CardRules`, which a target may
implement); without them only the first rule applies.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from syncd.engine.plan import field_changes
from syncd.model import Action, Digest, Op, Record, digest

Cards = frozenset[str]

PHASES = {Op.DISABLE: 0, Op.DELETE: 0, Op.UPDATE: 1, Op.CREATE: 2}
"""Removals first, then updates, then creates."""


@runtime_checkable
class CardRules(Protocol):
    """How a target's records hold cards (a target implements it to have card moves
    ordered and freed)."""

    secret_fields: frozenset[str]

    def cards(self, record: Record) -> Cards:
        """Return the cards `record` gives its person, as the target writes them (from
        the record alone: targets of one kind share what they found, `engine.cards`)."""
        ...

    def without_cards(self, record: Record, cards: Cards) -> Record:
        """Return `record` holding none of `cards` (everything else unchanged)."""
        ...

    def is_active(self, record: Record) -> bool:
        """Return True if `record` lets its person through (as `Target.is_active`)."""
        ...


@dataclass(slots=True)
class _Step:
    """One action with the cards its person holds before it and after it."""

    index: int
    action: Action
    before: Cards
    after: Cards
    successors: set[int] = field(default_factory=set)
    waiting: int = 0  # actions not yet applied that must come first

    @property
    def key(self) -> tuple[int, int]:
        return PHASES[self.action.op], self.index

    @property
    def gives(self) -> Cards:
        return self.after - self.before

    @property
    def frees(self) -> Cards:
        return self.before - self.after


Moves = tuple[Cards, Cards]
"""The cards an action's person holds (before it, after it)."""

_NONE: Cards = frozenset()


def cards_moved(action: Action, held: Mapping[str, Record], rules: CardRules) -> Moves:
    """Return (cards the person holds before `action`, after it); a blocked action, never
    applied, moves none."""
    if action.blocked is not None:
        return _NONE, _NONE
    record = held.get(action.person_key)
    before = rules.cards(record) if record is not None else _NONE
    after = _NONE if action.op is Op.DELETE else rules.cards(action.record)
    return before, after


def order_actions(
    actions: Sequence[Action],
    held: Mapping[str, Record],
    rules: CardRules | None,
    moves: Sequence[Moves] | None = None,
    digest_of: Digest = digest,
) -> list[Action]:
    """Return one target's `actions` in the order to apply them (see the module
    docstring), with an extra update where a cycle of card moves needs one.

    `held`: person key → the record the target holds for them now (a person absent from
    it holds no card); `moves`, if given: `cards_moved` of each action, in order. Given
    cards that are unique before and after (no card wanted by two people), no returned
    action gives a card that a person still holds when it is applied. A card no action
    frees (its holder keeps it) is left for the target to refuse: only that one record
    fails.
    """
    by_phase = sorted(actions, key=lambda a: PHASES[a.op])  # stable: plan order within
    if rules is None:
        return by_phase
    if moves is None:
        moves = [cards_moved(a, held, rules) for a in actions]
    edges = _edges(moves)
    if not edges:  # the usual case: no card changes hands
        return by_phase
    steps = [_Step(i, a, *moves[i]) for i, a in enumerate(actions)]
    for first, then in edges:
        steps[first].successors.add(then)
    for step in steps:
        for index in step.successors:
            steps[index].waiting += 1
    ready = [s.key for s in steps if s.waiting == 0]
    heapq.heapify(ready)
    remaining = {s.index for s in steps}
    ordered: list[Action] = []
    while remaining:
        if not ready:
            step = steps[_in_cycle(steps, remaining)]
            ordered.append(_clearing(step, held.get(step.action.person_key), rules, digest_of))
            step.before = step.before & step.after
            _release(steps, step, ready)
            continue
        step = steps[heapq.heappop(ready)[1]]
        remaining.discard(step.index)
        ordered.append(step.action)
        _release(steps, step, ready)
    return ordered


def _edges(moves: Sequence[Moves]) -> list[tuple[int, int]]:
    """Return (i, j) for every action j that gives a card action i frees."""
    freers: dict[str, list[int]] = {}
    for index, (before, after) in enumerate(moves):
        if before and before != after:
            for card in before - after:
                freers.setdefault(card, []).append(index)
    if not freers:
        return []
    edges: list[tuple[int, int]] = []
    for index, (before, after) in enumerate(moves):
        if after and before != after:
            for card in after - before:
                edges.extend((f, index) for f in freers.get(card, ()) if f != index)
    return edges


def _release(steps: list[_Step], done: _Step, ready: list[tuple[int, int]]) -> None:
    """`done` has freed its cards: its successors wait for it no longer."""
    for index in sorted(done.successors):
        successor = steps[index]
        successor.waiting -= 1
        if successor.waiting == 0:
            heapq.heappush(ready, successor.key)
    done.successors = set()


def _in_cycle(steps: list[_Step], remaining: set[int]) -> int:
    """Return the first (by phase, plan order) step on a cycle of waiting steps.

    Called when every remaining step waits for another remaining one: walking from any
    of them to a step it waits for must come back to a step already seen.
    """
    waits_for: dict[int, int] = {}
    for index in sorted(remaining):
        for successor in steps[index].successors:
            waits_for.setdefault(successor, index)
    seen: list[int] = []
    current = min(remaining, key=lambda i: steps[i].key)
    while current not in seen:
        seen.append(current)
        current = waits_for[current]
    cycle = seen[seen.index(current) :]
    return min(cycle, key=lambda i: steps[i].key)


def _clearing(step: _Step, held: Record | None, rules: CardRules, digest_of: Digest) -> Action:
    """Return the update that frees what `step` frees and gives nothing: its person's new
    record without the cards it gains."""
    action = step.action
    record = rules.without_cards(action.record, step.gives)
    return Action(
        target=action.target,
        person_key=action.person_key,
        op=Op.UPDATE,
        record=record,
        after_digest=digest_of(record),
        before_digest=action.before_digest,
        remote_id=action.remote_id,
        changes=field_changes(held, record, rules.secret_fields),
        active_after=action.active_after,
        attempts=action.attempts,
    )
