"""Record rules of the emulated EF-45, shared by its state and its HTTP layer.

Constants of the device (firmware versions, record version, error statuses), the
`DeviceError` every refused request raises, paging of the list endpoints, and the field
checks the device applies to a record before storing it. Pure: no state, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FIRMWARE_VERSIONS = {"new": "1.3.2", "old": "1.2.20"}
DEFAULT_RECORD_VERSION = 8976
LOCK_BUSY = 409
"""POST /lock while another client holds it, in the "device" profile (the SDK's answer;
`Ef45Behaviour.lock_busy_status` chooses another)."""
DB_FULL = 507
"""A write past the capacity; the body says "DB is full" (the real status is unverified)."""
DEVICE_TIME_FORMAT = "%m%d%H%M%Y.%S"
SUBJECT_DEFAULTS: dict[str, Any] = {
    "first_name": "", "last_name": "", "match_until": "", "access_allowed": True,
    "wiegand_facility": -1, "wiegand_site": -1, "wiegand_code": -1, "wiegand_custom": "",
    "left_eye_template": "", "right_eye_template": "",
    "left_image_path": "", "right_image_path": "",
}  # fmt: skip
"""What a replacing `PUT /subjects/{uuid}` leaves in the fields its body omits."""
USER_INFO_DEFAULTS: dict[str, Any] = {
    "card": "", "pin": "", "admin": 0, "group_index": 0, "by_pass_card": 0, "indivisual": 0,
}  # fmt: skip
"""What a replacing `PUT /user-info/uuid/{uuid}` leaves in the fields its body omits."""
DEFAULT_CONFIG: dict[str, Any] = {
    "launcher.device.door.relay": 1,
    "launcher.device.door.duration": 3,
    "launcher.auth.mode.start": 1,
    "launcher.network.server.useserver": False,
    "umx.camera.enrol.MinimumUsableIrisArea": 70,
    "umx.iris.recog.EyeMatchThreshold": 0.35,
}
"""A new terminal's configuration (title → value)."""
USER_INFO_FIELDS = frozenset(
    {
        "card", "pin", "admin", "group_index", "by_pass_card", "indivisual",
        "three_out_status", "three_out_status_access_allowed", "job_code",
        "time_schedule_code", "apb_status", "message",
    }
)  # fmt: skip
"""The fields of a UserInfo record besides `user_uuid` (`indivisual` sic, as the device)."""

_CARD = re.compile(r"^[0-9A-Fa-f]{2}( [0-9A-Fa-f]{2})*$")

Record = dict[str, Any]


class DeviceError(Exception):
    """A request the device refuses: HTTP `status` and the device's `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, as the paged endpoints wrap it."""

    items: list[Record]
    page: int
    page_size: int
    total: int
    has_more: bool


def paginate(items: list[Record], page: int | None, page_size: int) -> Page:
    """Given all items, return page `page` (1-based), or everything when `page` is None.

    Raise DeviceError(400) for a page or page size below 1.
    """
    if page is None:
        return Page(items, 1, len(items), len(items), False)
    if page < 1 or page_size < 1:
        raise DeviceError(400, "page and page_size must be positive")
    start = (page - 1) * page_size
    chunk = items[start : start + page_size]
    return Page(chunk, page, page_size, len(items), start + page_size < len(items))


def require_uuid(body: Mapping[str, Any]) -> str:
    """Return the body's `user_uuid`; raise DeviceError(400) if missing or empty."""
    uuid = body.get("user_uuid")
    if not isinstance(uuid, str) or not uuid:
        raise DeviceError(400, "user_uuid is required")
    return uuid


def require_last_name(subject: Mapping[str, Any]) -> None:
    """Raise DeviceError(400) unless the subject has a non-blank `last_name`."""
    last_name = subject.get("last_name")
    if not isinstance(last_name, str) or not last_name.strip():
        raise DeviceError(400, "last_name is required")


def require_sub_id(value: Any) -> int:
    """Return `value` as a face sub_id (0 to 5); raise DeviceError(400) otherwise."""
    try:
        sub_id = int(value)
    except (TypeError, ValueError):
        raise DeviceError(400, "sub_id is required (0 to 5)") from None
    if not 0 <= sub_id <= 5:
        raise DeviceError(400, "sub_id must be 0 to 5")
    return sub_id


def require_match_until(subject: Mapping[str, Any], formats: tuple[str, ...]) -> None:
    """Raise DeviceError(400) unless `match_until` is absent, "" or in one of `formats`."""
    value = subject.get("match_until")
    if value is None or value == "":
        return
    for fmt in formats:
        try:
            datetime.strptime(str(value), fmt)
            return
        except ValueError:
            continue
    raise DeviceError(400, "match_until has a format the firmware does not take")


def card_of(info: Mapping[str, Any]) -> str:
    """Return the user info's card ("" for none); raise DeviceError(400) if malformed.

    Cards are hexadecimal bytes separated by spaces, e.g. "65 D8 A1 BD".
    """
    card = str(info.get("card") or "")
    if card and not _CARD.match(card):
        raise DeviceError(400, "UserInfo card must be hex bytes separated by spaces")
    return card.upper()
