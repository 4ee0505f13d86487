"""The removal caps on plain values: per run on people with access, over a rolling window,
and what an administrator released (`syncd.engine.safety`)."""

from __future__ import annotations

from datetime import timedelta

from syncd.config import SafetyConfig
from syncd.engine.capping import caps_for
from syncd.engine.safety import Caps, WindowUse, apply_caps, released_removals
from syncd.model import HeldRecord, Op, Plan, RecordState, count_present
from tests.unit.test_plan import NOW, FakeTarget, held_for, person, plan_for
from tests.unit.test_plan_light import light


def leavers_plan(count: int, *, keep: int = 0) -> Plan:
    """Return a plan on target "door" disabling `count` leavers (and `keep` in step)."""
    target = FakeTarget()
    leavers = [person(f"gone{i:03d}") for i in range(count)]
    stay = [person(f"stay{i:03d}") for i in range(keep)]
    held = [held_for(target, p) for p in leavers + stay]
    return plan_for(stay, held, gone=leavers, target=target)


def blocked_reasons(plan: Plan) -> set[str | None]:
    return {a.blocked for a in plan.actions if a.op in {Op.DISABLE, Op.DELETE}}


def test_people_with_access_leave_out_disabled_and_unconfirmed_records() -> None:
    target = FakeTarget()
    off = person("off")
    held = {
        "on": held_for(target, person("on")),
        "on2": held_for(target, person("on2")),
        "off": held_for(target, off, disabled_since=NOW - timedelta(days=3)),
        "failed": held_for(target, person("failed"), state=RecordState.FAILED, attempts=1),
        "blocked": held_for(target, person("blocked"), state=RecordState.BLOCKED),
        "pending": HeldRecord(target.name, "pending", RecordState.PENDING),
    }
    for table in (held, light(target.name, held)):
        assert count_present(table) == 5
        assert count_present(table, with_access=True) == 4  # "off" and "pending" have none


def test_run_share_is_of_people_with_access_not_of_records_held() -> None:
    # 100 records held, 60 already disabled: 10 % of the 40 with access is 4 a run.
    plan = leavers_plan(5)
    caps = Caps(max_count=50, max_share=0.10)
    assert apply_caps(plan, {"door": 100}, caps).blocked == 0  # the old, weakening base
    capped = apply_caps(plan, {"door": 40}, caps)
    assert capped.blocked == 5
    assert blocked_reasons(capped) == {"5 removals exceed the cap of 4 for 40 people with access"}
    assert apply_caps(leavers_plan(4), {"door": 40}, caps).blocked == 0


def test_window_counts_removals_already_applied() -> None:
    caps = Caps(max_count=50, max_share=1.0, window_h=24, window_count=50, window_share=1.0)
    plan = leavers_plan(10, keep=90)
    fits = apply_caps(plan, {"door": 100}, caps, window={"door": WindowUse(40, 40)})
    assert fits.blocked == 0  # 40 + 10 = 50: at the cap, not over it
    over = apply_caps(plan, {"door": 100}, caps, window={"door": WindowUse(46, 46)})
    assert over.blocked == 10 and over.summaries[0].disable == 0
    (reason,) = blocked_reasons(over)
    assert reason is not None
    assert reason.startswith("46 removals in the last 24 h + 10 planned exceed the 24 h cap of 50")
    other = apply_caps(plan, {"door": 100}, caps, window={"lobby": WindowUse(46, 46)})
    assert other.blocked == 0  # the window is per target


def test_window_share_is_of_people_with_access_at_its_start() -> None:
    # Batches at the per-run cap (10 % of those left) pass run after run; the window sees
    # 10 + 9 removed from the 100 who had access at its start: 20 % of 100 is 20.
    caps = Caps()
    assert (
        apply_caps(leavers_plan(9), {"door": 90}, caps, window={"door": WindowUse(10, 10)}).blocked
        == 0
    )
    third = apply_caps(leavers_plan(8), {"door": 81}, caps, window={"door": WindowUse(19, 19)})
    assert third.blocked == 8
    (reason,) = blocked_reasons(third)
    assert (
        reason is not None
        and "cap of 20 for 100 people with access at the window's start" in reason
    )


def test_one_removal_is_never_blocked_by_a_share_alone() -> None:
    plan = leavers_plan(1)
    assert apply_caps(plan, {"door": 3}, Caps()).blocked == 0
    assert apply_caps(plan, {"door": 3}, Caps(), window={"door": WindowUse(1, 1)}).blocked == 1


def test_released_removals_are_not_blocked_and_not_counted() -> None:
    plan = leavers_plan(30, keep=70)
    caps = Caps(window_count=25)
    full = {"door": WindowUse(25, 25)}
    assert apply_caps(plan, {"door": 100}, caps, window=full).blocked == 30
    approved = frozenset(("door", f"gone{i:03d}") for i in range(30))
    released = apply_caps(plan, {"door": 100}, caps, approved, window=full)
    assert released.blocked == 0 and released.summaries[0].disable == 30
    assert len(released_removals(released, approved, None)) == 30
    some = frozenset(list(approved)[:28])  # the two left are a new run's worth: under the run cap
    assert apply_caps(plan, {"door": 100}, caps, some).blocked == 0
    assert apply_caps(plan, {"door": 100}, caps, some, window=full).blocked == 2
    assert len(released_removals(apply_caps(plan, {"door": 100}, caps, some), some, None)) == 28


def test_allow_deletes_replaces_every_cap_and_releases_all() -> None:
    plan = leavers_plan(30, keep=70)
    full = {"door": WindowUse(100, 100)}
    allowed = apply_caps(plan, {"door": 100}, Caps(allow=30), window=full)
    assert allowed.blocked == 0
    assert len(released_removals(allowed, frozenset(), 30)) == 30
    too_many = apply_caps(plan, {"door": 100}, Caps(allow=29), window=full)
    assert blocked_reasons(too_many) == {"30 removals exceed --allow-deletes 29"}
    assert released_removals(too_many, frozenset(), 29) == ()


def test_window_off_and_config_mapping() -> None:
    plan = leavers_plan(5, keep=95)
    off = Caps(window_h=0)
    assert apply_caps(plan, {"door": 100}, off, window={"door": WindowUse(500, 0)}).blocked == 0
    caps = caps_for(SafetyConfig(), None)
    assert (caps.window_h, caps.window_count, caps.window_share) == (24.0, 100, 0.20)
    assert caps_for(SafetyConfig(delete_window_h=0)).windowed is False
    assert caps_for(SafetyConfig(), 10).windowed is False
