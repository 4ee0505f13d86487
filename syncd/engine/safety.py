"""Safety caps on removals: block, never guess.

Per target and run, the disables and deletes together are capped by a count
(`max_deletes`) and by a share of the people the target holds (`max_delete_share`; a
single removal is never blocked by the share alone, so a small terminal can still lose
one leaver). Over either cap, every removal of that target is blocked — recorded and
reported, never applied — while its creates and updates proceed. An administrator
releases them with `apply --allow-deletes N` (a higher count for one run) or by
approving the run (`released`: exactly the removals blocked in that run, which then
neither count against the cap nor get blocked).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from syncd.engine.plan import summarise
from syncd.model import Action, Op, Plan

REMOVALS = frozenset({Op.DISABLE, Op.DELETE})


@dataclass(frozen=True, slots=True)
class Caps:
    """The removal caps of one run. `allow` overrides both with an explicit count."""

    max_count: int = 50
    max_share: float = 0.10
    allow: int | None = None

    def limit(self, held: int) -> int:
        """Return how many removals a target holding `held` people may take in one run."""
        if self.allow is not None:
            return self.allow
        share_limit = max(1, math.floor(self.max_share * held))
        return min(self.max_count, share_limit)


def apply_caps(
    plan: Plan,
    held_counts: Mapping[str, int],
    caps: Caps,
    released: frozenset[tuple[str, str]] = frozenset(),
) -> Plan:
    """Return `plan` with every removal of a target over its cap marked blocked.

    Removals named in `released` (target, person key) were approved by an administrator:
    they are never blocked and do not count against the cap.
    """
    actions: list[Action] = []
    summaries = []
    for summary in plan.summaries:
        mine = list(plan.for_target(summary.target))

        def capped(action: Action) -> bool:
            return action.op in REMOVALS and (action.target, action.person_key) not in released

        removals = sum(1 for a in mine if capped(a))
        held = held_counts.get(summary.target, 0)
        limit = caps.limit(held)
        if removals > limit:
            reason = f"{removals} removals exceed the cap of {limit} for {held} people held"
            mine = [_block(a, reason) if capped(a) else a for a in mine]
        actions.extend(mine)
        summaries.append(summarise(summary.target, mine, summary.unchanged, summary.deferred))
    return dataclasses.replace(plan, actions=tuple(actions), summaries=tuple(summaries))


def _block(action: Action, reason: str) -> Action:
    return dataclasses.replace(action, blocked=reason)
