"""The exceptions of the EF-45 client, and how a device answer maps onto them.

    Ef45Error                 syncd.errors.TargetError
    ├── Ef45Unavailable       TemporaryTargetError: timeout, connection refused or dropped,
    │   │                     an answer that is not the JSON it should be (target-level)
    │   └── Ef45ServerError   a 5xx answer: the terminal is up and refused one request
    │                         (record-level; a run of them is a storm: `engine.apply`)
    ├── LockBusy              TemporaryTargetError: POST /lock refused (another client holds
    │                         the lock) and stealing is off or failed (target-level)
    ├── LockLost              TemporaryTargetError: the device forgot our lock mid-session
    │                         and one retake (and retry) failed (target-level)
    ├── Ef45Rejected          PermanentTargetError: any other 4xx (validation, unknown
    │   │                     config title or file, unknown path) (record-level)
    │   ├── CardInUse         409 on a write whose user exists, or whose uuid is free:
    │   │                     another user holds the card
    │   └── FileMissing       `load-file` answered `file: ""` (or 404): no such file
    ├── DeviceFull            PermanentTargetError: 507 ("DB is full": the status is a guess)
    ├── UnknownUser           PermanentTargetError: the user does not exist on the device
    └── UserExists            PermanentTargetError: the user exists on the device already

The device answers 404 (absent) and 409 (exists: a uuid, or a card another user holds)
as bare status codes (`ef45-notes.md`): decisions are taken on the status alone, and a
409 on a create is told apart by asking whether the user exists (`Ef45Client`). "DB is
full" has an unknown status (*unverified*): 507 (Insufficient Storage) counts as it; under
any other status it is the error that status means (a body text never decides). 429 is
temporary, its Retry-After honoured.

Messages name the terminal, the method, the path (never the query, which carries the
lock uid) and the HTTP status. Remote bodies are redacted (the lock uid, the request's
PIN and templates, any long base64 run) and cut with `syncd.errors.cut`; request bodies
are never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from syncd.errors import PermanentTargetError, TargetError, TemporaryTargetError, cut

SECRET_FIELDS = frozenset({"pin", "left_eye_template", "right_eye_template", "face_feature"})
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")
DB_FULL_STATUS = 507
"""Insufficient Storage: taken as "DB is full" (the device's real status is unverified)."""
TOO_MANY_REQUESTS = 429
"""A terminal (or a proxy before it) asking syncd to slow down: temporary, not the record."""


class Ef45Error(TargetError):
    """Base of every EF-45 client error; `status` is the HTTP status, if there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Ef45Unavailable(Ef45Error, TemporaryTargetError):
    """The terminal did not answer usefully: timeout, connection error or drop, 5xx."""


class Ef45ServerError(Ef45Unavailable):
    """The terminal answered 5xx: it is up, and this request failed (may pass)."""

    target_level = False


class LockBusy(Ef45Error, TemporaryTargetError):
    """Another client (often the vendor's PC software) holds the terminal's lock."""


class LockLost(Ef45Error, TemporaryTargetError):
    """The terminal forgot this session's lock and retaking it (once) did not help."""


class Ef45Rejected(Ef45Error, PermanentTargetError):
    """The terminal refused the request (4xx): retrying the same request will not help."""


class CardInUse(Ef45Rejected):
    """The terminal refused a card that another user holds (409)."""


class FileMissing(Ef45Rejected):
    """The terminal has no such image file (`load-file` answered `file: ""`)."""


class DeviceFull(Ef45Error, PermanentTargetError):
    """The terminal's user database is full ("DB is full", or 507)."""


class UnknownUser(Ef45Error, PermanentTargetError):
    """The user does not exist on the terminal."""


class UserExists(Ef45Error, PermanentTargetError):
    """The user exists on the terminal already."""


def secrets_of(body: Any) -> list[str]:
    """Return the string values of secret fields in a request body, faces included."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key in SECRET_FIELDS and isinstance(value, str) and value:
                found.append(value)
            elif isinstance(value, list | tuple):
                for item in value:
                    found.extend(secrets_of(item))
    return found


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` without the given secrets or long base64 runs (templates), cut short."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return cut(_BASE64_RUN.sub("<redacted>", text))


def is_lock_problem(status: int, lost_statuses: Collection[int]) -> bool:
    """Whether the answer to a locked call means "you do not hold the lock".

    Decided on the status alone (`lost_lock_statuses`, by default 401, 403 and 423: the
    real device's status is unverified); a body text never counts.
    """
    return status in lost_statuses


RETRY_AFTER_CAP_S = 60.0
"""The longest Retry-After honoured from a terminal (the retry policy's deadline bounds it too)."""


def error_for(status: int, text: str, where: str) -> Ef45Error:
    """Given a non-2xx answer (`text` already redacted), return the exception to raise.

    Decided on the status alone, never on a body text: 507 is "DB is full" (its real
    status is unknown: under another 4xx it is a record-level `Ef45Rejected`, under a
    5xx a server error, both failing closed), 5xx a server error, 429 (too many
    requests) a temporary refusal honouring Retry-After, anything else an `Ef45Rejected`.
    """
    message = f"{where}: HTTP {status}: {text}" if text else f"{where}: HTTP {status}"
    if status == DB_FULL_STATUS:
        return DeviceFull(message, status=status)
    if status >= 500:
        return Ef45ServerError(message, status=status)
    if status < 400 or status == TOO_MANY_REQUESTS:
        return Ef45Unavailable(message, status=status)
    return Ef45Rejected(message, status=status)


def retry_after_header(value: str | None) -> float | None:
    """Return a Retry-After header given in seconds (the form terminals use), capped at
    `RETRY_AFTER_CAP_S`; None if absent or in another form (an HTTP date is not trusted:
    a terminal's clock may be off)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not seconds >= 0:
        return None
    return min(seconds, RETRY_AFTER_CAP_S)
