"""The plan on plain values: create, update, disable, delete, no-op, caps, redaction."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import SafetyConfig
from syncd.engine.capping import cap_removals
from syncd.engine.plan import REDACTED, Policy, compute_plan
from syncd.engine.safety import Caps, apply_caps
from syncd.model import (
    Desired,
    Enrollment,
    HeldRecord,
    Op,
    Person,
    Plan,
    Record,
    RecordState,
    Status,
    digest,
)
from syncd.targets.base import TargetSession, selects_by_groups

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class FakeTarget:
    """A pure target: the record is the person's names, status, card and PIN."""

    kind = "fake"
    secret_fields = frozenset({"pin"})

    def __init__(self, name: str = "door", groups: tuple[str, ...] = ()) -> None:
        self.name = name
        self.groups = groups

    @property
    def render_key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def selects(self, person: Person) -> bool:
        return selects_by_groups(self.groups, person)

    def render(self, person: Person, enrollments: Sequence[Enrollment]) -> Record:
        return {
            "name": person.display_name,
            "active": person.status is Status.ACTIVE,
            "card": person.cards[0] if person.cards else None,
            "pin": person.pin,
        }

    def is_active(self, record: Record) -> bool:
        return bool(record["active"])

    @asynccontextmanager
    async def session(self) -> AsyncIterator[TargetSession]:  # pragma: no cover - unused
        raise NotImplementedError
        yield


def person(key: str, **changes: Any) -> Person:
    base = Person(key=key, first_name="Ada", last_name=key.title(), cards=(42,), pin="1234")
    return dataclasses.replace(base, **changes)


def held_for(target: FakeTarget, p: Person, **changes: Any) -> HeldRecord:
    record = target.render(p, ())
    base = HeldRecord(
        target=target.name,
        person_key=p.key,
        state=RecordState.OK,
        digest=digest(record),
        record=record,
        remote_id=p.key,
    )
    return dataclasses.replace(base, **changes)


def plan_for(
    people: list[Person],
    held: list[HeldRecord],
    *,
    gone: list[Person] = (),  # type: ignore[assignment]
    target: FakeTarget | None = None,
    policy: Policy = Policy(),
    now: datetime = NOW,
) -> Plan:
    target = target or FakeTarget()
    desired = Desired(people={p.key: p for p in people}, gone={p.key: p for p in gone})
    return compute_plan(
        desired, [target], {target.name: {h.person_key: h for h in held}}, policy, now
    )


def ops(plan: Plan) -> list[tuple[str, Op]]:
    return [(a.person_key, a.op) for a in plan.actions]


def test_new_person_is_created() -> None:
    plan = plan_for([person("a")], [])
    assert ops(plan) == [("a", Op.CREATE)]
    assert plan.summaries[0].create == 1
    assert plan.actions[0].before_digest is None


def test_person_in_step_is_a_no_op() -> None:
    target = FakeTarget()
    a = person("a")
    plan = plan_for([a], [held_for(target, a)], target=target)
    assert plan.actions == ()
    assert plan.summaries[0].unchanged == 1
    assert plan.in_step


def test_changed_card_is_an_update_with_field_diff() -> None:
    target = FakeTarget()
    old = person("a")
    plan = plan_for([person("a", cards=(43,))], [held_for(target, old)], target=target)
    assert ops(plan) == [("a", Op.UPDATE)]
    assert [(c.name, c.before, c.after) for c in plan.actions[0].changes] == [("card", 42, 43)]


def test_pin_change_is_redacted() -> None:
    target = FakeTarget()
    plan = plan_for([person("a", pin="9999")], [held_for(target, person("a"))], target=target)
    change = plan.actions[0].changes[0]
    assert (change.name, change.before, change.after) == ("pin", REDACTED, REDACTED)
    assert "9999" not in repr(plan.actions[0].changes)


def test_disabled_in_source_is_disabled_on_target() -> None:
    target = FakeTarget()
    a = person("a")
    plan = plan_for([person("a", status=Status.DISABLED)], [held_for(target, a)], target=target)
    assert ops(plan) == [("a", Op.DISABLE)]
    assert plan.actions[0].active_after is False


def test_gone_from_source_is_disabled_first() -> None:
    target = FakeTarget()
    a = person("a")
    plan = plan_for([], [held_for(target, a)], gone=[a], target=target)
    assert ops(plan) == [("a", Op.DISABLE)]


def test_disabled_long_enough_is_deleted() -> None:
    target = FakeTarget()
    a = person("a", status=Status.DISABLED)
    since = NOW - timedelta(days=31)
    plan = plan_for([], [held_for(target, a, disabled_since=since)], gone=[a], target=target)
    assert ops(plan) == [("a", Op.DELETE)]


def test_disabled_recently_is_kept() -> None:
    target = FakeTarget()
    a = person("a", status=Status.DISABLED)
    since = NOW - timedelta(days=3)
    plan = plan_for([], [held_for(target, a, disabled_since=since)], gone=[a], target=target)
    assert plan.actions == ()


def test_never_deletes_what_syncd_did_not_create() -> None:
    target = FakeTarget()
    a = person("a", status=Status.DISABLED)
    record = held_for(target, a, disabled_since=NOW - timedelta(days=90), created_by_syncd=False)
    assert plan_for([], [record], gone=[a], target=target).actions == ()


def test_protected_keys_are_never_touched() -> None:
    target = FakeTarget()
    a = person("a")
    plan = plan_for(
        [],
        [held_for(target, a)],
        gone=[a],
        target=target,
        policy=Policy(protected_keys=frozenset({"a"})),
    )
    assert plan.actions == ()


def test_person_leaving_targets_groups_is_disabled_there() -> None:
    target = FakeTarget(groups=("lab",))
    a = person("a", groups=frozenset({"lab"}))
    moved = person("a", groups=frozenset({"finance"}))
    plan = plan_for([moved], [held_for(target, a)], target=target)
    assert ops(plan) == [("a", Op.DISABLE)]


def test_failed_record_waits_for_its_retry_time() -> None:
    target = FakeTarget()
    failed = HeldRecord(
        target="door",
        person_key="a",
        state=RecordState.FAILED,
        next_attempt_at=NOW + timedelta(minutes=5),
        attempts=1,
    )
    plan = plan_for([person("a")], [failed], target=target)
    assert plan.actions == () and plan.summaries[0].deferred == 1 and not plan.in_step
    later = plan_for([person("a")], [failed], target=target, now=NOW + timedelta(minutes=6))
    assert ops(later) == [("a", Op.CREATE)] and later.actions[0].attempts == 1


def test_cap_blocks_removals_but_not_creates() -> None:
    target = FakeTarget()
    leavers = [person(f"p{i:02d}") for i in range(10)]
    held = [held_for(target, p) for p in leavers]
    plan = plan_for([person("new")], held, gone=leavers, target=target)
    capped = apply_caps(plan, {"door": 10}, Caps(max_count=50, max_share=0.10))
    summary = capped.summaries[0]
    assert (summary.create, summary.disable, summary.blocked) == (1, 0, 10)
    assert [a.op for a in capped.runnable()] == [Op.CREATE]
    released = apply_caps(plan, {"door": 10}, Caps(allow=10))
    assert released.summaries[0].disable == 10 and released.blocked == 0


def test_single_removal_is_never_blocked_by_share_alone() -> None:
    target = FakeTarget()
    a = person("a")
    plan = plan_for([], [held_for(target, a)], gone=[a], target=target)
    assert apply_caps(plan, {"door": 3}, Caps()).blocked == 0


def test_leaver_whose_create_was_never_confirmed_is_cleaned_up_at_once() -> None:
    # The create reached the terminal but the process died before the ledger recorded it
    # (pending), or it timed out after the terminal acted (failed): the person may hold
    # access there, so a leaver's record is deleted now, not left forever.
    target = FakeTarget()
    # A cleanup a safety cap blocked stays due (blocked): forgetting it once blocked left a
    # leaver's access on the terminal while the plan said "in step" (found by the
    # convergence property under faults).
    a = person("a", status=Status.DISABLED)
    for state in (RecordState.PENDING, RecordState.FAILED, RecordState.BLOCKED):
        unconfirmed = HeldRecord(target="door", person_key="a", state=state)
        plan = plan_for([a], [unconfirmed], target=target)
        assert ops(plan) == [("a", Op.DELETE)], state
    assert plan_for([a], [], target=target).actions == ()  # never sent: nothing to clean


def test_active_person_with_unconfirmed_create_is_created_again() -> None:
    unconfirmed = HeldRecord(target="door", person_key="a", state=RecordState.PENDING)
    assert ops(plan_for([person("a")], [unconfirmed])) == [("a", Op.CREATE)]


def test_a_leaver_in_backoff_is_disabled_at_once() -> None:
    target = FakeTarget()
    held = held_for(target, person("a"))
    failing = dataclasses.replace(
        held, state=RecordState.FAILED, next_attempt_at=NOW + timedelta(hours=1), attempts=3
    )
    stays = plan_for([person("a")], [failing], target=target)
    assert stays.actions == () and stays.summaries[0].deferred == 1  # an update waits
    leaves = plan_for([person("a", status=Status.DISABLED)], [failing], target=target)
    assert ops(leaves) == [("a", Op.DISABLE)] and leaves.summaries[0].deferred == 0


def test_a_cleanup_counts_in_the_share_caps_base_as_it_counts_among_the_removals() -> None:
    """One leaver with access and one create never confirmed, under a share cap of 1.0:
    two removals over two people who may pass, never "2 removals exceed the cap of 1"."""
    target = FakeTarget()
    b = person("b")
    a = person("a", status=Status.DISABLED)
    held = [
        held_for(target, b),
        HeldRecord(target="door", person_key="a", state=RecordState.FAILED),
    ]
    plan = plan_for([a, dataclasses.replace(b, status=Status.DISABLED)], held, target=target)
    assert sorted(ops(plan)) == [("a", Op.DELETE), ("b", Op.DISABLE)]
    safety = SafetyConfig(max_delete_share=1.0, max_window_delete_share=1.0, delete_window_h=0)
    records = {r.person_key: r for r in held}
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert cap_removals(plan, {"door": records}, safety, None, now).blocked == 0  # type: ignore[arg-type]
    tighter = SafetyConfig(max_delete_share=0.5, delete_window_h=0)
    assert cap_removals(plan, {"door": records}, tighter, None, now).blocked == 2  # type: ignore[arg-type]
