"""Value types of syncd.toml that are checked when the file is loaded, not when first used:
an IANA time zone, a crontab line, a dotted version, a name of a source or target.

Each is an `Annotated[str, ...]`, so a bad value is reported with its own dotted path
(`daemon.reconcile_cron: ...`) among every other problem of the file.
"""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field


def check_zone(name: str) -> str:
    """Return `name` if it is a time zone this system knows; raise ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name: Europe/Berlin)") from None
    return name


def check_cron(line: str) -> str:
    """Return `line` if it is "" (off) or a five-field crontab line the daemon's scheduler
    (APScheduler's `CronTrigger.from_crontab`) accepts; raise ValueError otherwise."""
    if not line:
        return line
    # Imported here: the scheduler costs ~80 ms to import, and only a config that sets a
    # cron line pays it (every command loads the config).
    from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

    try:
        CronTrigger.from_crontab(line, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"not a crontab line (minute hour day month weekday): {exc}") from None
    return line


TimeZoneName = Annotated[str, AfterValidator(check_zone)]
"""An IANA time zone name (`Europe/Berlin`, `UTC`)."""

CronLine = Annotated[str, AfterValidator(check_cron)]
"""A five-field crontab line in the daemon's local time zone, or "" for off."""

Version = Annotated[str, Field(pattern=r"^\d+(\.\d+){0,3}$")]
"""A firmware version as dotted digits (`1.3.0`)."""

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""The name of a source or target: letters, digits, '_', '.', '-' (at most 64)."""
