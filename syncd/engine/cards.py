"""Card moves over a whole plan: who must give a card up, and every target's apply order.

The plan decides each person alone; cards are shared. A badge reissued to a new hire
while the leaver who had it is disabled, or two people swapping badges, need the
actions of several people looked at together, on the targets whose records hold cards
(`order.CardRules`, e.g. EF-45):

- A removal never gives a card: a card a disable would give is left out of its record,
  so a disable is never refused for a card (a leaver's access must go whatever HR did
  with their badge).
- A card a create or update gives is taken from a record without access that holds it:
  a disable in this plan loses the card, and a person disabled earlier (no action in
  this plan, record not in backoff) gets an update that clears it, with a note. The
  person who may pass wins over the record that lets no one through; the next plan
  leaves that record alone (a record without access is not updated for a field).
- Then each target's actions are put in apply order (`order.order_actions`): removals
  first, a card freed before it is given, a cycle of moves broken by an extra update.

Other targets' actions are only put in that first order. Summaries are recounted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from syncd.engine.order import CardRules, Cards, Moves, cards_moved, order_actions
from syncd.engine.plan import RecordLoader, field_changes, summarise
from syncd.model import (
    Action,
    Digest,
    HeldRecord,
    HeldTable,
    Op,
    Plan,
    Record,
    RecordState,
    digest,
)
from syncd.targets.base import Target

CLAIMS = frozenset({Op.CREATE, Op.UPDATE})


def with_card_moves(
    plan: Plan,
    targets: Mapping[str, Target],
    held: Mapping[str, Mapping[str, HeldRecord]],
    records: Mapping[tuple[str, str], Record],
    load: RecordLoader,
    digest_of: Digest = digest,
) -> Plan:
    """Return `plan` with its card moves resolved and every target's actions in apply
    order (see the module docstring); records changed here get digests by `digest_of`.

    `held`: what the ledger says each target holds; `records`: the records behind the
    plan's actions where already loaded (else taken from `held`, else from `load`, which
    also loads the records without access that may have to give a card up).
    """
    return _moved(plan, targets, held, records, load, digest_of)


def _moved(
    plan: Plan,
    targets: Mapping[str, Target],
    held: Mapping[str, Mapping[str, HeldRecord]],
    records: Mapping[tuple[str, str], Record],
    load: RecordLoader,
    digest_of: Digest,
) -> Plan:
    actions: list[Action] = []
    summaries = []
    notes = list(plan.notes)
    memos: dict[type, dict[int, tuple[Record, Cards]]] = {}
    for summary in plan.summaries:
        mine = list(plan.for_target(summary.target))
        found = targets.get(summary.target)
        released = 0
        if isinstance(found, CardRules) and mine:
            target = _Memo(found, memos.setdefault(type(found), {}))
            mine_held = held.get(summary.target, {})
            before = _records_of(summary.target, mine, mine_held, records, load)
            count = len(mine)
            mine, moves, why = _free_cards(
                target, mine, before, mine_held, load, plan.created_at, digest_of
            )
            released = len(mine) - count
            notes.extend(f"{summary.target}: {a.person_key}: {w}" for a, w in why)
            mine = order_actions(mine, before, target, moves, digest_of)
        else:
            mine = order_actions(mine, {}, None)
        actions.extend(mine)
        unchanged = max(0, summary.unchanged - released)
        summaries.append(summarise(summary.target, mine, unchanged, summary.deferred))
    return dataclasses.replace(
        plan, actions=tuple(actions), summaries=tuple(summaries), notes=tuple(notes)
    )


class _Memo:
    """A target's `CardRules`, each record's cards read once: terminals configured alike
    share their record objects (`Ledger.load_records`, the plan's renders), so a plan over
    ten of them reads each card once, not ten times. Keyed by identity, exact while the
    memo keeps the records alive."""

    def __init__(self, rules: CardRules, memo: dict[int, tuple[Record, Cards]]) -> None:
        self.rules = rules
        self.secret_fields = rules.secret_fields
        self.memo = memo

    def cards(self, record: Record) -> Cards:
        found = self.memo.get(id(record))
        if found is None:
            found = self.memo[id(record)] = (record, self.rules.cards(record))
        return found[1]

    def without_cards(self, record: Record, cards: Cards) -> Record:
        return self.rules.without_cards(record, cards)

    def is_active(self, record: Record) -> bool:
        return self.rules.is_active(record)


def _records_of(
    target: str,
    actions: Sequence[Action],
    held: Mapping[str, HeldRecord],
    records: Mapping[tuple[str, str], Record],
    load: RecordLoader,
) -> dict[str, Record]:
    """Return person key → the record the target holds now, for the actions' people."""
    found: dict[str, Record] = {}
    missing: list[tuple[str, str]] = []
    for action in actions:
        key = action.person_key
        record = records.get((target, key))
        if record is None and key in held:
            record = held[key].record
        if record is not None:
            found[key] = record
        elif action.before_digest is not None:
            missing.append((target, key))
    if missing:
        found.update({key: record for (_, key), record in load(missing).items()})
    return found


def _free_cards(
    rules: CardRules,
    actions: list[Action],
    before: dict[str, Record],
    held: Mapping[str, HeldRecord],
    load: RecordLoader,
    now: datetime,
    digest_of: Digest,
) -> tuple[list[Action], list[Moves], list[tuple[Action, str]]]:
    """Return the target's actions, with disables giving no card and dropping the cards
    others get, followed by the updates that clear the cards others get from records
    without access that have no action; the cards each moves (`order.cards_moved`); and
    those updates with their notes. `before` gains the records those updates clear."""
    actions = list(actions)
    moves = [cards_moved(a, before, rules) for a in actions]
    claimed: dict[str, str] = {}  # card → who gets it
    for action, (had, after) in zip(actions, moves, strict=True):
        if action.op in CLAIMS and action.blocked is None and after != had:
            claimed.update(dict.fromkeys(after - had, action.person_key))
    for index, action in enumerate(actions):
        if action.op is Op.DISABLE and action.blocked is None:
            had, after = moves[index]
            # A disable gives no card, and gives up one that someone else gets.
            taken = {c for c in after if claimed.get(c, action.person_key) != action.person_key}
            drop = (after - had) | taken
            if drop:
                actions[index] = _without(action, frozenset(drop), before, rules, digest_of)
                moves[index] = cards_moved(actions[index], before, rules)
    freed = {c for had, after in moves if had != after for c in had - after}
    wanted = {c: who for c, who in claimed.items() if c not in freed}
    if not wanted:
        return actions, moves, []
    busy = {a.person_key for a in actions}
    added = []
    for key, (record, record_held) in sorted(_idle(held, busy, load, now).items()):
        cards = rules.cards(record) & wanted.keys()
        if cards and not rules.is_active(record):
            before[key] = record
            givers = ", ".join(sorted({wanted[c] for c in cards}))
            clearing = _clearing_update(record_held, record, cards, rules, digest_of)
            added.append((clearing, f"card cleared for {givers} (access is off here)"))
            actions.append(clearing)
            moves.append(cards_moved(clearing, before, rules))
    return actions, moves, added


def _without(
    action: Action,
    cards: Cards,
    before: Mapping[str, Record],
    rules: CardRules,
    digest_of: Digest,
) -> Action:
    if not cards:
        return action
    record = rules.without_cards(action.record, cards)
    changes = field_changes(before.get(action.person_key), record, rules.secret_fields)
    return dataclasses.replace(
        action, record=record, after_digest=digest_of(record), changes=changes
    )


def _idle(
    held: Mapping[str, HeldRecord], busy: set[str], load: RecordLoader, now: datetime
) -> dict[str, tuple[Record, HeldRecord]]:
    """Return the records switched to no access that have no action in the plan and are
    not waiting for a retry: person key → (record, held record)."""
    others = held.unsettled() if isinstance(held, HeldTable) else held  # settled: active
    candidates = [
        h
        for key, h in others.items()
        if key not in busy
        and h.present
        and h.disabled_since is not None
        and not (h.state is RecordState.FAILED and h.next_attempt_at and now < h.next_attempt_at)
    ]
    missing = [(h.target, h.person_key) for h in candidates if h.record is None]
    loaded = load(missing) if missing else {}
    found: dict[str, tuple[Record, HeldRecord]] = {}
    for h in candidates:
        record = h.record if h.record is not None else loaded.get((h.target, h.person_key))
        if record is not None:
            found[h.person_key] = (record, h)
    return found


def _clearing_update(
    held: HeldRecord, record: Record, cards: Cards, rules: CardRules, digest_of: Digest
) -> Action:
    """Return the update that clears `cards` from a record without access."""
    cleared = rules.without_cards(record, cards)
    return Action(
        target=held.target,
        person_key=held.person_key,
        op=Op.UPDATE,
        record=cleared,
        after_digest=digest_of(cleared),
        before_digest=held.digest,
        remote_id=held.remote_id,
        changes=field_changes(record, cleared, rules.secret_fields),
        active_after=False,
        attempts=held.attempts,
    )
