"""Identifiers an EF-45 terminal hands syncd, checked before they are used or stored.

A terminal is not trusted to answer sane values: an id holding CR/LF would be written
into the ledger and into URLs, and break every later run. So:

- a lock uid is a UUID, 8-4-4-4-12 hex digits (`ef45-notes.md`: the firmware creates no
  handler for any other `lock_uid`); nothing else is accepted;
- a user uuid is any text syncd could have written as a person key: 1 to
  `MAX_USER_UUID` characters (the ledger's key width), none of them a control, format
  (bidi overrides, zero-width), line or paragraph separator, or surrogate character (a
  lone surrogate cannot even be stored as UTF-8);
- a log id is an integer (not a bool) in 0 … `LOG_ID_MAX`; the events cursor is one
  written as decimal digits; a face's sub_id an integer in 0 … `SUB_ID_MAX`.

`shown` returns a refused value fit for a message: its repr (control characters
escaped), cut short — never the raw value.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeGuard, TypeVar

from syncd.errors import cut

log = logging.getLogger(__name__)
Item = TypeVar("Item", bound=Mapping[str, Any])

MAX_USER_UUID = 255
"""The widest person key the ledger stores (`people.key`, `target_records.person_key`)."""
LOG_ID_MAX = 2**31 - 1
"""The largest log id asked for (the device's ids are 32-bit signed, as far as known)."""
SUB_ID_MAX = 255
"""The largest face sub_id taken (the device's are 0 … 3 as far as known)."""
SHOWN_LIMIT = 60

_LOCK_UID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_lock_uid(value: object) -> TypeGuard[str]:
    """Whether `value` is a lock uid as the device hands them out (a UUID string)."""
    return isinstance(value, str) and _LOCK_UID.fullmatch(value) is not None


def is_user_uuid(value: object) -> TypeGuard[str]:
    """Whether `value` is a user uuid syncd may store and put in a path (see module)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_UUID:
        return False
    return not any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in value)


def is_log_id(value: object) -> TypeGuard[int]:
    """Whether `value` is a log id: an int (not a bool) in 0 … LOG_ID_MAX."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LOG_ID_MAX


def is_sub_id(value: object) -> TypeGuard[int]:
    """Whether `value` is a face sub_id: an int (not a bool) in 0 … SUB_ID_MAX."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SUB_ID_MAX


def log_cursor(text: str | None) -> int | None:
    """Return the stored events cursor `text` as a log id; None if there is none or it is
    not one (decimal digits in 0 … LOG_ID_MAX)."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= LOG_ID_MAX else None


async def with_user_uuid(items: AsyncIterator[Item], what: str, where: str) -> AsyncIterator[Item]:
    """Yield the `items` whose `user_uuid` is one (`is_user_uuid`); the others are skipped,
    with one warning at the end naming `where` (the terminal and list), how many, and the
    first one's uuid as `shown`."""
    skipped, first = 0, ""
    async for item in items:
        uuid = item.get("user_uuid")
        if is_user_uuid(uuid):
            yield item
            continue
        skipped, first = skipped + 1, first or shown(uuid)
    if skipped:
        log.warning(
            "%s: %d %s with a malformed user_uuid skipped (first: %s)", where, skipped, what, first
        )


def shown(value: object) -> str:
    """Return a refused value for a message: its repr, escaped and cut short."""
    return cut(repr(value), SHOWN_LIMIT)
