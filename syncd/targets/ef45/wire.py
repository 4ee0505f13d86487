"""The EF-45 record on the wire (pure): the subject and user-info fields, cards in
the terminal's hexadecimal, and bodies as the vendor SDK sends them.

Shared by rendering (`ef45.target`, imported by every plan) and writing
(`ef45.session`, imported only when a terminal is opened), so a plan does not load
the HTTP client.
"""

from __future__ import annotations

from typing import Any

from syncd.model import Record

SUBJECT_FIELDS = (
    "user_uuid",
    "first_name",
    "last_name",
    "access_allowed",
    "match_until",
    "wiegand_facility",
    "wiegand_site",
    "wiegand_code",
    "wiegand_custom",
)
USER_INFO_FIELDS = ("user_uuid", "card", "pin", "admin", "group_index")
WIEGAND_FIELDS = ("wiegand_facility", "wiegand_site", "wiegand_code", "wiegand_custom")


def card_hex(card: int, card_bytes: int = 4) -> str:
    """Return `card` as the EF-45 writes it: upper-case hex bytes separated by spaces,
    left-padded with 00 bytes to `card_bytes` (0: as few bytes as the number needs)."""
    if card < 0:
        raise ValueError("card numbers are non-negative")
    return spaced_hex(f"{card:X}", card_bytes)


def spaced_hex(digits: str, card_bytes: int) -> str:
    """Return upper-case hex `digits` as the terminal's card text: a space every byte,
    left-padded with 00 bytes to `card_bytes` (0: to whole bytes only)."""
    raw = digits.rjust(max(len(digits) + len(digits) % 2, 2 * card_bytes), "0")
    return " ".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def wire_subject(subject: Record) -> dict[str, Any]:
    """Return a subject body as the SDK sends it: `wiegand_custom` as a string ("" for
    not set, -1 in the record)."""
    body = dict(subject)
    custom = body.get("wiegand_custom")
    if isinstance(custom, int):
        body["wiegand_custom"] = "" if custom == -1 else str(custom)
    return body


def split_record(record: Record) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the (subject, user-info) bodies of a flat EF-45 record."""
    subject = {name: record[name] for name in SUBJECT_FIELDS if name in record}
    user_info = {name: record[name] for name in USER_INFO_FIELDS if name in record}
    return subject, user_info


def carried(current: Record, subject: Record) -> dict[str, Any]:
    """Return `subject` over the terminal's `current` subject: every field `subject`
    leaves out (templates, image paths, …) keeps the terminal's value; the terminal's
    `record_version` is kept unless `subject` names one."""
    return {**current, **subject}
