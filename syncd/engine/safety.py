"""Safety caps on removals: block, never guess.

Removals are the disables and deletes of one target. They are capped twice, per target:

- per run, by a count (`max_deletes`) and by a share (`max_delete_share`) of the people
  *with access* on the target (records it holds that let their person through: records
  already disabled do not count, so the cap does not weaken as people leave);
- over a rolling window of `delete_window_h` hours, by a count (`max_window_deletes`) and
  a share (`max_window_delete_share`) of the people who had access at the window's start
  (with access now + disabled in the window): the removals already applied in the window
  plus this run's must stay within it, so batches just under the per-run cap cannot add
  up to a mass removal.

A single removal is never blocked by a share alone (a small terminal can still lose one
leaver a run and one a window). Over any cap, every removal of that target is blocked —
recorded and reported, never applied — while its creates and updates proceed. An
administrator releases them with `apply --allow-deletes N` (a higher count for one run,
in place of every cap) or by approving the run (`released`: exactly the removals blocked
in that run). Released removals are neither blocked nor counted, in that run or in any
later window (`released_removals` names them so that the ledger can record the release).
The window's counts come from the ledger (`WindowUse`): this module does no I/O.
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
class WindowUse:
    """One target's removals already applied in the rolling window (from the ledger).

    `removed`: the removals that count against the window (those an administrator
    released do not). `lost_access`: the people with a removal applied in the window,
    released or not (added to those with access now, they estimate who had access at its
    start; a person disabled and then deleted is one person).
    """

    removed: int = 0
    lost_access: int = 0


@dataclass(frozen=True, slots=True)
class Caps:
    """The removal caps of one run. `allow` overrides them all with an explicit count.

    `window_h` 0 turns the rolling-window cap off.
    """

    max_count: int = 50
    max_share: float = 0.10
    allow: int | None = None
    window_h: float = 24.0
    window_count: int = 100
    window_share: float = 0.20

    def limit(self, with_access: int) -> int:
        """Return how many removals a target with `with_access` people may take in one run."""
        if self.allow is not None:
            return self.allow
        return min(self.max_count, max(1, math.floor(self.max_share * with_access)))

    def window_limit(self, at_start: int) -> int:
        """Return how many removals a target whose window began with `at_start` people with
        access may take within the window."""
        return min(self.window_count, max(1, math.floor(self.window_share * at_start)))

    @property
    def windowed(self) -> bool:
        """True when the rolling-window cap applies (on, and not overridden by `allow`)."""
        return self.window_h > 0 and self.allow is None

    def refusal(self, removals: int, with_access: int, window: WindowUse) -> str | None:
        """Return why `removals` planned on a target are blocked, or None if they may go."""
        if removals == 0:
            return None
        limit = self.limit(with_access)
        if removals > limit and self.allow is not None:
            return f"{removals} removals exceed --allow-deletes {limit}"
        if removals > limit:
            over = f"{removals} removals exceed the cap of {limit}"
            return f"{over} for {with_access} people with access"
        return self._window_refusal(removals, with_access, window) if self.windowed else None

    def _window_refusal(self, removals: int, with_access: int, window: WindowUse) -> str | None:
        at_start = with_access + window.lost_access
        cap = self.window_limit(at_start)
        if window.removed + removals <= cap:
            return None
        hours = f"{self.window_h:g} h"
        return (
            f"{window.removed} removals in the last {hours} + {removals} planned exceed the "
            f"{hours} cap of {cap} for {at_start} people with access at the window's start"
        )


def apply_caps(
    plan: Plan,
    with_access: Mapping[str, int],
    caps: Caps,
    released: frozenset[tuple[str, str]] = frozenset(),
    window: Mapping[str, WindowUse] | None = None,
) -> Plan:
    """Return `plan` with every removal of a target over a cap marked blocked.

    `with_access`: per target, the people with access there (`count_present(…,
    with_access=True)`); `window`: per target, its removals in the rolling window (none
    if absent). Removals named in `released` (target, person key) were approved by an
    administrator: they are never blocked and do not count against the caps.
    """
    actions: list[Action] = []
    summaries = []
    for summary in plan.summaries:
        mine = list(plan.for_target(summary.target))
        removals = sum(1 for a in mine if _capped(a, released))
        used = (window or {}).get(summary.target, WindowUse())
        reason = caps.refusal(removals, with_access.get(summary.target, 0), used)
        if reason is not None:
            mine = [_block(a, reason) if _capped(a, released) else a for a in mine]
        actions.extend(mine)
        summaries.append(summarise(summary.target, mine, summary.unchanged, summary.deferred))
    return dataclasses.replace(plan, actions=tuple(actions), summaries=tuple(summaries))


def released_removals(
    plan: Plan, released: frozenset[tuple[str, str]], allow: int | None
) -> tuple[Action, ...]:
    """Return the removals of `plan` an administrator released and that will run: those
    named in `released`, or every runnable removal when `allow` (--allow-deletes) is set."""
    return tuple(
        a
        for a in plan.runnable()
        if a.op in REMOVALS and (allow is not None or (a.target, a.person_key) in released)
    )


def _capped(action: Action, released: frozenset[tuple[str, str]]) -> bool:
    return action.op in REMOVALS and (action.target, action.person_key) not in released


def _block(action: Action, reason: str) -> Action:
    return dataclasses.replace(action, blocked=reason)
