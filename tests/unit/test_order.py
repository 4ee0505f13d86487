"""Apply order of one target's actions and card moves over a plan, on plain values.

`order_actions`: removals first, a card freed before it is given, a swap broken by an
extra update; a hypothesis property simulates a device that refuses a card another
person holds. `with_card_moves`: a leaver's badge reissued to a new hire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.engine.cards import with_card_moves
from syncd.engine.order import Cards, order_actions
from syncd.engine.plan import summarise
from syncd.model import Action, HeldRecord, Op, Plan, Record, RecordState, digest

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REMOVALS = {Op.DISABLE, Op.DELETE}


class CardTarget:
    """A target whose record is {"card": …, "on": access}; one card per person."""

    name = "door"
    kind = "fake"
    secret_fields = frozenset({"pin"})

    def cards(self, record: Record) -> Cards:
        return frozenset({record["card"]}) if record.get("card") else frozenset()

    def without_cards(self, record: Record, cards: Cards) -> Record:
        return {**record, "card": ""} if record.get("card") in cards else record

    def is_active(self, record: Record) -> bool:
        return bool(record.get("on"))


RULES = CardTarget()


def rec(card: str = "", on: bool = True) -> Record:
    return {"card": card, "on": on}


def act(key: str, op: Op, card: str = "", on: bool = True, held: Record | None = None) -> Action:
    record = rec(card, on) if op is not Op.DELETE else (held or rec())
    return Action(
        target="door",
        person_key=key,
        op=op,
        record=record,
        after_digest=digest(record),
        before_digest=digest(held) if held is not None else None,
        active_after=on and op is not Op.DELETE,
    )


def cards_after(actions: Iterable[Action]) -> list[tuple[str, Op, str]]:
    return [(a.person_key, a.op, str(a.record.get("card", ""))) for a in actions]


def test_removals_first_then_updates_then_creates_in_plan_order() -> None:
    actions = [
        act("new1", Op.CREATE),
        act("upd1", Op.UPDATE),
        act("gone", Op.DISABLE, on=False),
        act("new2", Op.CREATE),
        act("old", Op.DELETE),
        act("upd2", Op.UPDATE),
    ]
    for rules in (RULES, None):
        ordered = order_actions(actions, {}, rules)
        assert [a.person_key for a in ordered] == ["gone", "old", "upd1", "upd2", "new1", "new2"]


def test_badge_swap_is_broken_by_clearing_one_card_first() -> None:
    held = {"ann": rec("AA"), "bob": rec("BB")}
    ann, bob = act("ann", Op.UPDATE, "BB", held=held["ann"]), act("bob", Op.UPDATE, "AA")
    ordered = order_actions([ann, bob], held, RULES)
    assert cards_after(ordered) == [
        ("ann", Op.UPDATE, ""),
        ("bob", Op.UPDATE, "AA"),
        ("ann", Op.UPDATE, "BB"),
    ]
    clearing = ordered[0]
    assert clearing.after_digest == digest(rec("", True)) and clearing.active_after
    assert [(c.name, c.before, c.after) for c in clearing.changes] == [("card", "AA", "")]
    assert ordered[2] is ann  # the full record, all its changes, comes last


def test_reissued_badge_waits_for_the_leavers_disable() -> None:
    held = {"leaver": rec("CC")}
    hire = act("hire", Op.CREATE, "CC")
    leaver = act("leaver", Op.DISABLE, "", on=False)  # the disable clears the card
    ordered = order_actions([hire, leaver], held, RULES)
    assert [a.person_key for a in ordered] == ["leaver", "hire"]


def test_a_card_freed_by_an_update_is_given_after_it_even_across_phases() -> None:
    # Bob is deleted (frees BB), Ann takes BB and frees AA, a hire takes AA.
    held = {"ann": rec("AA"), "bob": rec("BB")}
    actions = [
        act("hire", Op.CREATE, "AA"),
        act("ann", Op.UPDATE, "BB"),
        act("bob", Op.DELETE, held=held["bob"]),
    ]
    ordered = order_actions(actions, held, RULES)
    assert [a.person_key for a in ordered] == ["bob", "ann", "hire"]


def test_three_way_rotation_needs_one_clearing_update() -> None:
    held = {"a": rec("1"), "b": rec("2"), "c": rec("3")}
    actions = [act("a", Op.UPDATE, "2"), act("b", Op.UPDATE, "3"), act("c", Op.UPDATE, "1")]
    ordered = order_actions(actions, held, RULES)
    assert len(ordered) == 4
    assert cards_after(ordered)[0] == ("a", Op.UPDATE, "")
    assert_no_card_given_while_held(ordered, held)


def test_a_card_nobody_frees_is_left_for_the_target_to_refuse() -> None:
    held = {"keeper": rec("KK")}
    ordered = order_actions([act("hire", Op.CREATE, "KK")], held, RULES)
    assert [a.person_key for a in ordered] == ["hire"]


def test_blocked_actions_move_no_card() -> None:
    held = {"leaver": rec("CC")}
    blocked = dataclasses.replace(act("leaver", Op.DELETE, held=held["leaver"]), blocked="cap")
    ordered = order_actions([act("hire", Op.CREATE, "CC"), blocked], held, RULES)
    assert [a.person_key for a in ordered] == ["leaver", "hire"]  # phase order only


# -- property ----------------------------------------------------------------------------


def assert_no_card_given_while_held(ordered: list[Action], held: Mapping[str, Record]) -> None:
    """Apply `ordered` to a device that refuses a card another person holds."""
    state = {key: str(record.get("card", "")) for key, record in held.items()}
    for action in ordered:
        key = action.person_key
        if action.op is Op.DELETE:
            state.pop(key, None)
            continue
        card = str(action.record.get("card", ""))
        if card and card != state.get(key):
            holders = [k for k, c in state.items() if c == card and k != key]
            assert not holders, f"{key} given {card} while {holders} hold it: {ordered}"
        state[key] = card


@st.composite
def card_moves(draw: st.DrawFn) -> tuple[list[Action], dict[str, Record], dict[str, str | None]]:
    """People with unique cards before and after; the actions between the two states."""
    people = [f"p{i}" for i in range(draw(st.integers(1, 8)))]
    pool = [f"C{i}" for i in range(len(people) + 2)]

    def assignment() -> dict[str, str | None]:
        cards = draw(st.permutations(pool))
        kinds = draw(st.lists(st.sampled_from(["absent", "card", "none"]), min_size=len(people),
                              max_size=len(people)))  # fmt: skip
        return {
            p: None if kind == "absent" else cards[i] if kind == "card" else ""
            for i, (p, kind) in enumerate(zip(people, kinds, strict=True))
        }

    before, after = assignment(), assignment()
    held = {p: rec(c) for p, c in before.items() if c is not None}
    actions: list[Action] = []
    for person in draw(st.permutations(people)):
        old, new = before[person], after[person]
        if old is None and new is not None:
            actions.append(act(person, Op.CREATE, new))
        elif old is not None and new is None:
            actions.append(act(person, Op.DELETE, held=held[person]))
        elif old is not None and new is not None and (old != new or draw(st.booleans())):
            # A disable never gains a card (`engine.cards` sees to it): it keeps or clears.
            may_disable = new in ("", old)
            op = Op.DISABLE if may_disable and draw(st.booleans()) else Op.UPDATE
            actions.append(act(person, op, new, on=op is Op.UPDATE, held=held[person]))
        else:
            after[person] = old  # no action: the person keeps what they hold
    return actions, held, after


@settings(max_examples=300, deadline=None)
@given(card_moves())
def test_no_action_gives_a_card_a_person_still_holds(
    case: tuple[list[Action], dict[str, Record], dict[str, str | None]],
) -> None:
    actions, held, after = case
    ordered = order_actions(actions, held, RULES)
    assert_no_card_given_while_held(ordered, held)
    originals = [a for a in ordered if any(a is b for b in actions)]
    assert len(originals) == len(actions)  # each once; the rest are clearing updates
    extra = [a for a in ordered if not any(a is b for b in actions)]
    assert all(a.op is Op.UPDATE and not a.record["card"] for a in extra)
    ops = [a.op in REMOVALS for a in ordered]
    assert ops == sorted(ops, reverse=True)  # every removal before every other action
    final = {k: str(r.get("card", "")) for k, r in held.items()}
    for action in ordered:
        if action.op is Op.DELETE:
            final.pop(action.person_key)
        else:
            final[action.person_key] = str(action.record["card"])
    assert final == {k: c for k, c in after.items() if c is not None}


# -- with_card_moves -----------------------------------------------------------------------


def held_record(key: str, record: Record, **fields: object) -> HeldRecord:
    values: dict[str, object] = {
        "target": "door",
        "person_key": key,
        "state": RecordState.OK,
        "digest": digest(record),
        "record": record,
        "remote_id": key,
    }
    values.update(fields)
    return HeldRecord(**values)  # type: ignore[arg-type]


def plan_of(actions: list[Action], unchanged: int = 0) -> Plan:
    summary = summarise("door", actions, unchanged, 0)
    return Plan(actions=tuple(actions), summaries=(summary,), created_at=NOW)


def no_load(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Record]:
    assert not list(keys), "every record was given"
    return {}


def test_badge_of_a_leaver_disabled_earlier_is_cleared_for_the_new_hire() -> None:
    leaver = held_record("leaver", rec("CC", on=False), disabled_since=NOW - timedelta(days=3))
    plan = plan_of([act("hire", Op.CREATE, "CC")], unchanged=1)
    moved = with_card_moves(plan, {"door": RULES}, {"door": {"leaver": leaver}}, {}, no_load)  # type: ignore[dict-item]
    assert cards_after(moved.actions) == [("leaver", Op.UPDATE, ""), ("hire", Op.CREATE, "CC")]
    clearing = moved.actions[0]
    assert not clearing.active_after and clearing.before_digest == leaver.digest
    assert moved.summaries[0].update == 1 and moved.summaries[0].unchanged == 0
    assert moved.notes == ("door: leaver: card cleared for hire (access is off here)",)


def test_a_leavers_disable_in_the_same_run_gives_the_badge_up() -> None:
    held = {"leaver": rec("CC")}
    plan = plan_of([act("hire", Op.CREATE, "CC"), act("leaver", Op.DISABLE, "CC", on=False)])
    records = {("door", "leaver"): held["leaver"]}
    moved = with_card_moves(plan, {"door": RULES}, {"door": {}}, records, no_load)  # type: ignore[dict-item]
    assert cards_after(moved.actions) == [("leaver", Op.DISABLE, ""), ("hire", Op.CREATE, "CC")]
    assert moved.actions[0].after_digest == digest(rec("", on=False))


def test_a_disable_never_gives_a_card() -> None:
    held = {"leaver": rec("OLD")}
    plan = plan_of([act("leaver", Op.DISABLE, "NEW", on=False)])
    records = {("door", "leaver"): held["leaver"]}
    moved = with_card_moves(plan, {"door": RULES}, {"door": {}}, records, no_load)  # type: ignore[dict-item]
    assert cards_after(moved.actions) == [("leaver", Op.DISABLE, "")]  # NEW left out


def test_a_record_waiting_for_its_retry_is_left_alone() -> None:
    leaver = held_record(
        "leaver", rec("CC", on=False), state=RecordState.FAILED,
        disabled_since=NOW - timedelta(days=3), next_attempt_at=NOW + timedelta(minutes=5),
    )  # fmt: skip
    plan = plan_of([act("hire", Op.CREATE, "CC")], unchanged=1)
    moved = with_card_moves(plan, {"door": RULES}, {"door": {"leaver": leaver}}, {}, no_load)  # type: ignore[dict-item]
    assert cards_after(moved.actions) == [("hire", Op.CREATE, "CC")]
