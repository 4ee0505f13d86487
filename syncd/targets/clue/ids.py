"""Identifiers CLUe hands back, checked before syncd uses or stores them.

An identifier from outside goes into URL paths (authId), the ledger (authId as a remote
id, logId, the events cursor) and comparisons with person keys (user.key). One with a
CR/LF, another control character, an absurd length or a value out of range could split a
request line, break a later run on a stored value, or overflow a date: it is refused
here, and the caller skips what it names (with a warning) or fails that request. The
ranges are syncd's own sanity bounds, not CLUe's (*unverified*: the guide says only
"Number" and "String").

Pure functions, no I/O.
"""

from __future__ import annotations

from syncd.errors import cut

AUTH_ID_MAX = 2**63 - 1
"""The largest authId accepted (a signed 64-bit id, the widest a server plausibly uses)."""
MAX_KEY_LEN = 255
"""Longest user.key accepted: the ledger's person keys are at most this long."""
MAX_LOG_ID_LEN = 128
"""Longest logId accepted: the ledger's event ids are at most this long."""
MAX_EPOCH_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the last instant a Python datetime holds."""
CURSOR_AHEAD_MS = 24 * 3600 * 1000
"""How far past "now" an events cursor may lie (device clocks run ahead a little)."""


def has_control(text: str) -> bool:
    """True if `text` holds a C0/C1 control character (CR, LF, NUL, DEL …) or a Unicode
    line or paragraph separator."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" for c in text)


def clean_text(value: object, max_len: int) -> str | None:
    """Return `value` if it is a non-empty str of at most `max_len` characters without
    control characters, else None."""
    if isinstance(value, str) and 0 < len(value) <= max_len and not has_control(value):
        return value
    return None


def auth_id(value: object) -> int | None:
    """Return `value` as an authId if it is an int (not a bool) in 1..AUTH_ID_MAX."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= AUTH_ID_MAX:
        return value
    return None


def auth_id_text(text: str | None) -> int | None:
    """Return the authId a stored remote id holds (ASCII digits in range), else None."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    return auth_id(int(text))


def user_key(value: object) -> str | None:
    """Return `value` as a user.key if it is clean text (`clean_text`, MAX_KEY_LEN)."""
    return clean_text(value, MAX_KEY_LEN)


def log_id(value: object) -> str | None:
    """Return an event's logId as text: a clean str (MAX_LOG_ID_LEN) or a non-negative
    int (the guide types it Number; its sample shows text); else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if 0 <= value <= AUTH_ID_MAX else None
    return clean_text(value, MAX_LOG_ID_LEN)


def epoch_ms_value(value: object) -> int | None:
    """Return `value` if it is an int (not a bool) epoch ms in 0..MAX_EPOCH_MS."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCH_MS:
        return value
    return None


def cursor_ms(text: str | None, now_ms: int) -> int | None:
    """Return a stored events cursor as epoch ms if it is ASCII digits within
    0..now_ms + CURSOR_AHEAD_MS, else None (the caller discards it)."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 16:
        return None
    value = int(text)
    return value if value <= now_ms + CURSOR_AHEAD_MS else None


def shown(value: object) -> str:
    """Return `value` for a warning: its repr, cut short (control characters visible)."""
    return cut(repr(value), 80)
