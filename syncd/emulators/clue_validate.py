"""Validation of a CLUe auth body (create and update), as the CLUe quick start describes it.

`problems(body)` returns one message per problem, each starting with the field's dotted
path (`auth.startTime: must be a number (epoch milliseconds)`); an empty list means the
body is acceptable. The emulator answers 400 with these messages joined by "; ".

The public guide gives field names, types and "required" marks only; which combinations
the real service refuses, and with what wording, is *unverified*. The rules here are the
guide's table taken literally, plus `endTime > startTime`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

ACTIVE_STATUSES = ("ACTIVE", "INACTIVE")
DOOR_ACCESS_TYPES = ("ALL_DOOR", "SPECIFIC")
SCHEDULE_TYPES = ("ALWAYS", "SPECIFIC")


def problems(body: object) -> list[str]:
    """Given a decoded JSON body, return its problems (empty when the body is valid)."""
    if not isinstance(body, Mapping):
        return ["body: must be a JSON object"]
    found: list[str] = []
    user = _object(body, "user", "user", found)
    if user is not None:
        _non_empty_text(user, "name", "user.name", found)
        _non_empty_text(user, "key", "user.key", found)
    auth = _object(body, "auth", "auth", found)
    if auth is not None:
        _check_auth(auth, found)
    return found


def _check_auth(auth: Mapping[str, Any], found: list[str]) -> None:
    _choice(auth, "activeStatus", ACTIVE_STATUSES, found)
    start = _epoch_ms(auth, "startTime", found)
    end = _epoch_ms(auth, "endTime", found)
    if start is not None and end is not None and end <= start:
        found.append("auth.endTime: must be after auth.startTime")
    if _choice(auth, "doorAccessType", DOOR_ACCESS_TYPES, found) == "SPECIFIC":
        _door_ids(auth.get("doorIds"), found)
    if _choice(auth, "scheduleType", SCHEDULE_TYPES, found) == "SPECIFIC":
        schedule = auth.get("scheduleId")
        if not (_is_int(schedule) or (isinstance(schedule, str) and schedule.strip())):
            found.append("auth.scheduleId: required when auth.scheduleType is SPECIFIC")
    credentials = _object(auth, "credentials", "auth.credentials", found)
    if credentials is not None:
        _check_credentials(credentials, found)


def _check_credentials(credentials: Mapping[str, Any], found: list[str]) -> None:
    cards = credentials.get("cards", [])
    if not isinstance(cards, list):
        found.append("auth.credentials.cards: must be a list")
    else:
        for index, card in enumerate(cards):
            _check_card(card, f"auth.credentials.cards[{index}]", found)
    faces = credentials.get("faceImages", [])
    if not isinstance(faces, list):
        found.append("auth.credentials.faceImages: must be a list of base64 strings")
    else:
        for index, face in enumerate(faces):
            if not _is_base64(face):
                found.append(f"auth.credentials.faceImages[{index}]: must be base64 text")
    for name in ("pin", "phone"):
        value = credentials.get(name)
        if value is not None and not _is_digits(value):
            found.append(f"auth.credentials.{name}: must be a number or a string of digits")


def _check_card(card: object, where: str, found: list[str]) -> None:
    if not isinstance(card, Mapping):
        found.append(f"{where}: must be an object with cardNumber and formatType")
        return
    number = card.get("cardNumber")
    if not (isinstance(number, str) and number.isascii() and number.isdigit()):
        found.append(f"{where}.cardNumber: must be decimal text")
    if not (isinstance(card.get("formatType"), str) and card["formatType"].strip()):
        found.append(f"{where}.formatType: required (e.g. CSN)")


def _object(
    parent: Mapping[str, Any], name: str, where: str, found: list[str]
) -> Mapping[str, Any] | None:
    value = parent.get(name)
    if isinstance(value, Mapping):
        return value
    found.append(f"{where}: required object" if value is None else f"{where}: must be an object")
    return None


def _non_empty_text(parent: Mapping[str, Any], name: str, where: str, found: list[str]) -> None:
    value = parent.get(name)
    if not (isinstance(value, str) and value.strip()):
        found.append(f"{where}: required non-empty string")


def _choice(
    auth: Mapping[str, Any], name: str, allowed: tuple[str, ...], found: list[str]
) -> str | None:
    value = auth.get(name)
    if value in allowed:
        return str(value)
    found.append(f"auth.{name}: must be one of {', '.join(allowed)}")
    return None


def _epoch_ms(auth: Mapping[str, Any], name: str, found: list[str]) -> int | None:
    value = auth.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    found.append(f"auth.{name}: must be a number (epoch milliseconds)")
    return None


def _door_ids(value: object, found: list[str]) -> None:
    if not (isinstance(value, list) and value and all(_is_int(item) for item in value)):
        found.append("auth.doorIds: a non-empty list of door ids is required for SPECIFIC")


def _is_int(value: object) -> bool:
    # bool is an int subclass; JSON true must not pass as a door id or a time.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_digits(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _is_base64(value: object) -> bool:
    if not (isinstance(value, str) and value):
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
