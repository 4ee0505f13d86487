"""Set an EF-45 terminal's clock (the `HasClock` capability).

The terminal keeps naive wall time: it is set to `now` read in the terminal's configured
`time_zone`, so its logs and `match_until` agree with the zone `render` uses.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from syncd.targets.base import ClockSet
from syncd.targets.ef45.client import Ef45Client


async def set_terminal_clock(client: Ef45Client, zone: ZoneInfo, now: datetime) -> ClockSet:
    """Given an open client, set the terminal to the aware `now` in `zone`; return the
    wall time set. Raise an Ef45Error if the terminal refuses or cannot be reached."""
    local = now.astimezone(zone)
    await client.set_device_time(local)
    return ClockSet(set_to=local.replace(tzinfo=None), zone=str(zone))
