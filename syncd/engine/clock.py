"""Set every EF-45 terminal's clock from the host's (a daily job of the daemon).

The terminal keeps naive wall time; each is set to the host clock's time in the
terminal's configured `time_zone`, so its logs and `match_until` agree with the zone
`render` uses. Terminals are set in parallel; one that fails is reported and never keeps
the others from being set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from syncd.engine.run import Engine
from syncd.errors import cut
from syncd.targets.ef45.target import Ef45Target


@dataclass(frozen=True, slots=True)
class ClockResult:
    """One terminal's outcome: the wall time it was set to, or why it was not."""

    target: str
    ok: bool
    set_to: datetime | None = None
    error: str | None = None


def set_device_clocks(engine: Engine) -> dict[str, ClockResult]:
    """Set each EF-45 target's clock to the engine's clock in the target's zone.

    Return target name → ClockResult for every EF-45 target (other kinds are skipped).
    Never raises for a terminal's failure: it is in that terminal's result.
    """
    terminals = {n: t for n, t in engine.targets.items() if isinstance(t, Ef45Target)}
    now = engine.clock()

    async def run() -> list[ClockResult]:
        return list(await asyncio.gather(*(_set_one(t, now) for t in terminals.values())))

    return {result.target: result for result in asyncio.run(run())}


async def _set_one(target: Ef45Target, now: datetime) -> ClockResult:
    local = now.astimezone(target.zone)
    try:
        async with target.client() as client:
            await client.set_device_time(local)
    except Exception as exc:  # reported per terminal; the others go on
        return ClockResult(target.name, ok=False, error=cut(f"{type(exc).__name__}: {exc}"))
    return ClockResult(target.name, ok=True, set_to=local.replace(tzinfo=None))
