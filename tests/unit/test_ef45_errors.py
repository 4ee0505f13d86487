"""The EF-45 client's pure parts: answer classification, redaction, versions, paging."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest

from syncd.errors import is_target_level
from syncd.targets.ef45.errors import (
    CardInUse,
    DeviceFull,
    Ef45Rejected,
    Ef45ServerError,
    Ef45Unavailable,
    LockBusy,
    LockLost,
    UnknownUser,
    error_for,
    is_lock_problem,
    redact,
    secrets_of,
)
from syncd.targets.ef45.lockstate import DEFAULT_LOST_LOCK_STATUSES
from syncd.targets.ef45.paging import iter_pages
from syncd.targets.ef45.records import version_key

WHERE = "EF-45 http://door:9980 POST /1.0/user"


def test_tree_says_whose_failure_it_is() -> None:
    for target_level in (Ef45Unavailable, LockBusy, LockLost):
        assert is_target_level(target_level("x"))
    for one_record in (Ef45ServerError, Ef45Rejected, CardInUse, DeviceFull, UnknownUser):
        assert not is_target_level(one_record("x"))


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (507, "DB is full", DeviceFull),
        (400, '{"message": "DB is full"}', Ef45Rejected),  # never decided on a text
        (429, "", Ef45Unavailable),  # slow down: temporary, Retry-After honoured
        (503, "busy", Ef45ServerError),
        (409, "", Ef45Rejected),  # bare: the client asks whether the user exists
        (409, "User uuid a already exists", Ef45Rejected),  # never decided on a text
        (404, "", Ef45Rejected),
        (400, "", Ef45Rejected),
    ],
)
def test_error_for(status: int, text: str, kind: type[Exception]) -> None:
    error = error_for(status, text, WHERE)
    assert type(error) is kind
    assert str(error).startswith(f"{WHERE}: HTTP {status}")


def test_lock_problems_are_decided_by_status_alone() -> None:
    default = DEFAULT_LOST_LOCK_STATUSES
    assert is_lock_problem(403, default) and is_lock_problem(423, default)
    assert not is_lock_problem(400, default)  # a body speaking of the lock no longer counts
    assert not is_lock_problem(404, default)
    assert not is_lock_problem(409, default)
    assert is_lock_problem(409, (409,)) and not is_lock_problem(403, (409,))


def test_redact_removes_secrets_and_templates() -> None:
    template = base64.b64encode(bytes(range(64))).decode()
    body = {"pin": "4321", "faces": [{"face_feature": "feat"}], "left_eye_template": template}
    text = f"pin 4321 feature feat template {template} tail"
    clean = redact(text, secrets_of(body))
    assert "4321" not in clean and "feat " not in clean and template not in clean
    assert clean.endswith("tail")
    assert redact("ab " * 400).endswith("(1199 chars)")  # cut strips the end
    assert redact("short", [""]) == "short"


def test_version_key() -> None:
    assert version_key("1.2.20") > version_key("1.2.3")
    assert version_key("1.3.2") >= version_key("1.3.0")
    assert version_key("1.3.0-beta") == (1, 3, 0)
    assert version_key("unknown") == ()


async def test_iter_pages_refuses_a_list_cut_off_midway() -> None:
    pages: dict[int, Mapping[str, Any]] = {
        1: {"items": [{"n": 1}], "has_more": True},
        2: {"items": [], "has_more": True},
    }

    async def fetch(page: int) -> Mapping[str, Any] | None:
        return pages[page]

    with pytest.raises(Ef45Unavailable, match="page 2 is empty"):
        _ = [item async for item in iter_pages(fetch, WHERE)]
    pages[2] = {"items": None}
    with pytest.raises(Ef45Unavailable, match="malformed"):
        _ = [item async for item in iter_pages(fetch, WHERE)]
