"""Read back what one EF-45 terminal holds, in the flat record shape `render` produces.

`observe_users(client)` lists every subject and every user info (paged; a list cut off
midway raises, it never comes back short) and merges them per `user_uuid` into the
record `Ef45Target.render` would have produced for that user: the same field names, the
card re-written as upper-case hex bytes separated by spaces, absent fields at render's
defaults (`""`, `0`, `-1` for Wiegand). So `digest_of(observed) == digest_of(rendered)`
exactly when the terminal holds what syncd would push (`digest_of`: the ledger's keyed
digest, `Ledger.record_digest`, on both sides).

A user info without a subject is not a user (the terminal cannot match it) and is left
out. Whether the real device returns the `pin` in `GET /user-info` is *unverified*: if it
does not, every user with a PIN looks altered to a deep plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.model import Record
from syncd.targets.ef45.client import Ef45Client

WIEGAND_FIELDS = ("wiegand_facility", "wiegand_site", "wiegand_code", "wiegand_custom")
_TEXT_DEFAULTS = {"first_name": "", "last_name": "", "match_until": "", "pin": ""}
_INT_DEFAULTS = {"admin": 0, "group_index": 0, **dict.fromkeys(WIEGAND_FIELDS, -1)}


async def observe_users(client: Ef45Client) -> dict[str, Record]:
    """Given an open (locked) client, return user uuid → flat record for every user."""
    subjects = {str(s.get("user_uuid", "")): s async for s in client.iter_subjects()}
    infos = {str(i.get("user_uuid", "")): i async for i in client.iter_user_info()}
    subjects.pop("", None)
    return {uuid: observed_record(s, infos.get(uuid)) for uuid, s in subjects.items()}


def observed_record(subject: Mapping[str, Any], user_info: Mapping[str, Any] | None) -> Record:
    """Return the flat record (render's shape) of one subject and its user info (if any)."""
    info = user_info or {}
    merged = {**info, **subject}
    record: dict[str, Any] = {"user_uuid": str(subject["user_uuid"])}
    for name, default in _TEXT_DEFAULTS.items():
        value = merged.get(name)
        record[name] = default if value is None else str(value)
    for name, number in _INT_DEFAULTS.items():
        record[name] = _as_int(merged.get(name), number)
    record["access_allowed"] = _as_bool(subject.get("access_allowed", True))
    record["card"] = normal_card(info.get("card"))
    return record


def normal_card(value: Any) -> str:
    """Return a card as render writes it (`65 D8 A1 BD`); "" for none; unparsable as is."""
    text = "" if value is None else str(value).strip()
    digits = text.replace(" ", "")
    if not digits:
        return ""
    try:
        number = int(digits, 16)
    except ValueError:
        return text  # not hex: kept verbatim, so it shows up as a difference
    raw = f"{number:X}"
    raw = raw if len(raw) % 2 == 0 else f"0{raw}"
    return " ".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def _as_int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)
