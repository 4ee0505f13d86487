"""Set every device clock from the host's (a daily job of the daemon).

Every target with a clock (`targets.base.HasClock`: each EF-45 terminal) is set to the
host clock's time in its own zone, so its logs and its time limits agree with the zone
`render` uses. Targets are set in parallel; one that fails is reported and never keeps
the others from being set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from syncd.engine import stopping
from syncd.engine.run import Syncer
from syncd.errors import cut
from syncd.targets.base import HasClock


@dataclass(frozen=True, slots=True)
class ClockResult:
    """One target's outcome: the wall time it was set to, or why it was not."""

    target: str
    ok: bool
    set_to: datetime | None = None
    error: str | None = None


def set_device_clocks(engine: Syncer) -> dict[str, ClockResult]:
    """Set each target's clock that has one to the engine's clock in the target's zone.

    Return target name → ClockResult for every target with a clock (others are skipped).
    Never raises for a target's failure: it is in that target's result.
    """
    devices = [t for t in engine.targets.values() if isinstance(t, HasClock)]
    now = engine.clock()

    async def run() -> list[ClockResult]:
        return list(await asyncio.gather(*(_set_one(t, now) for t in devices)))

    done = stopping.run(run(), what="setting device clocks")
    return {result.target: result for result in done}


async def _set_one(target: HasClock, now: datetime) -> ClockResult:
    try:
        done = await target.set_clock(now)
    except Exception as exc:  # reported per target; the others go on
        return ClockResult(target.name, ok=False, error=cut(f"{type(exc).__name__}: {exc}"))
    return ClockResult(target.name, ok=True, set_to=done.set_to)
