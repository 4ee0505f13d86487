"""The removal caps as a run applies them: from `[safety]` and the ledger to `engine.safety`.

`cap_removals` counts the people with access on each target, reads the removals of the
rolling window from the `changes` audit (`ledger.removals`) and applies the pure caps.
`record_released` writes, before apply sends them, which removals an administrator
released, so that no later window counts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from syncd.config import SafetyConfig
from syncd.engine.safety import Caps, WindowUse, apply_caps, released_removals
from syncd.ledger.removals import record_releases, removals_since
from syncd.model import HeldRecord, Op, Plan, count_present


def caps_for(safety: SafetyConfig, allow_deletes: int | None = None) -> Caps:
    """Return the caps `safety` configures (`allow_deletes`: --allow-deletes N, if given)."""
    return Caps(
        max_count=safety.max_deletes,
        max_share=safety.max_delete_share,
        allow=allow_deletes,
        window_h=safety.delete_window_h,
        window_count=safety.max_window_deletes,
        window_share=safety.max_window_delete_share,
    )


def window_use(engine: sa.Engine, caps: Caps, now: datetime) -> dict[str, WindowUse]:
    """Return per target the removals applied in the `caps.window_h` hours before `now`."""
    since = now - timedelta(hours=caps.window_h)
    return {
        target: WindowUse(removed=recent.counted, lost_access=recent.people)
        for target, recent in removals_since(engine, since).items()
    }


def cap_removals(
    plan: Plan,
    held: Mapping[str, Mapping[str, HeldRecord]],
    safety: SafetyConfig,
    engine: sa.Engine,
    now: datetime,
    *,
    allow_deletes: int | None = None,
    released: frozenset[tuple[str, str]] = frozenset(),
) -> Plan:
    """Return `plan` with the removals over a per-run or window cap blocked (`engine.safety`)."""
    caps = caps_for(safety, allow_deletes)
    with_access = {
        t: count_present(records, with_access=True) + _unconfirmed_cleanups(plan, t)
        for t, records in held.items()
    }
    window = window_use(engine, caps, now) if caps.windowed else {}
    return apply_caps(plan, with_access, caps, released, window)


def record_released(
    engine: sa.Engine,
    run_id: int,
    plan: Plan,
    now: datetime,
    allow_deletes: int | None = None,
    released: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    """Record the removals of `plan` that run `run_id` sends because an administrator
    released them (approved, or every removal under --allow-deletes)."""
    actions = released_removals(plan, released, allow_deletes)
    if allow_deletes is not None:
        reason = f"released by --allow-deletes {allow_deletes}"
    else:
        reason = "released by an administrator's approval"
    record_releases(engine, run_id, actions, reason, now)


def _unconfirmed_cleanups(plan: Plan, target: str) -> int:
    """Return how many of `target`'s planned deletes clear a record the ledger never saw
    confirmed (a create cut short: `before_digest` None). The target may let those people
    through, so they count among its people with access for the share caps, as their
    removals count among the removals: a cleanup is capped like any removal, never
    weighed against a base that leaves its person out."""
    return sum(1 for a in plan.for_target(target) if a.op is Op.DELETE and a.before_digest is None)
