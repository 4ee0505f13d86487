"""Small value helpers of the EF-45 client: the user as read back, versions, path segments."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Ef45User:
    """One user as the terminal holds it: subject, user info (None if none), faces."""

    subject: dict[str, Any]
    user_info: dict[str, Any] | None
    faces: tuple[dict[str, Any], ...]


def version_key(version: str) -> tuple[int, ...]:
    """Return "1.2.20" as (1, 2, 20) for comparing; () when it has no leading number."""
    parts: list[int] = []
    for part in version.strip().split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def seg(value: str | int) -> str:
    """Return `value` quoted for use as one URL path segment."""
    return quote(str(value), safe="")


def uuid_of(*parts: Mapping[str, Any] | None) -> str:
    """Return the first non-empty user_uuid of `parts`; raise ValueError if none has one."""
    for part in parts:
        if part is not None and isinstance(part.get("user_uuid"), str) and part["user_uuid"]:
            return str(part["user_uuid"])
    raise ValueError("user_uuid is required (in the subject, user info or a face)")
