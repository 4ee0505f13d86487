"""EF-45 identifiers and paging bounds (`ids`, `paging`), on plain values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from syncd.targets.ef45.errors import Ef45Unavailable
from syncd.targets.ef45.ids import (
    MAX_USER_UUID,
    is_lock_uid,
    is_log_id,
    is_user_uuid,
    log_cursor,
    shown,
)
from syncd.targets.ef45.paging import iter_pages

UID = "0f6c2a4e-8d1b-4c3a-9e7f-112233445566"


def test_only_a_uuid_is_a_lock_uid() -> None:
    assert is_lock_uid(UID) and is_lock_uid(UID.upper())
    for bad in ("x\r\nX: 1", UID + "\n", UID[:-1], f"{UID}0", "", None, 7, UID.replace("-", "")):
        assert not is_lock_uid(bad)


def test_user_uuids_hold_no_control_characters_and_fit_the_ledger() -> None:
    for good in ("a/b?c%d é", "3f0c-ab", "x" * MAX_USER_UUID, "Zoë Ünal"):
        assert is_user_uuid(good)
    bad = ("a\r\nb", "nul\x00", "tab\t", "\u202eevil", "zw\u200bj", "\ud800", "", "x" * 256, 5)
    for value in bad:
        assert not is_user_uuid(value)
    assert "\r" not in shown("a\r\nb") and len(shown("y" * 1000)) < 100


def test_log_ids_and_the_events_cursor_are_bounded_integers() -> None:
    assert is_log_id(0) and is_log_id(2**31 - 1)
    assert not any(is_log_id(v) for v in (-1, 2**31, True, "5", 1.0, None))
    assert log_cursor("41") == 41 and log_cursor(None) is None
    assert all(log_cursor(v) is None for v in ("-1", "4x", "99999999999", "٣", " 5", ""))


def pages(answers: list[Mapping[str, Any]]) -> Any:
    async def fetch(page: int) -> Mapping[str, Any] | None:
        return answers[min(page, len(answers)) - 1]

    return fetch


async def collect(fetch: Any, max_pages: int = 10_000) -> list[dict[str, Any]]:
    return [
        item async for item in iter_pages(fetch, "EF-45 x GET /1.0/subjects", max_pages=max_pages)
    ]


def page(number: int, *, more: bool, total: int | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"items": [{"user_uuid": f"u{number}"}], "has_more": more}
    if total is not None:
        answer["total"] = total
    return answer


async def test_a_list_is_read_whole_when_it_ends() -> None:
    answers = [page(1, more=True, total=3), page(2, more=True, total=3), page(3, more=False)]
    assert [i["user_uuid"] for i in await collect(pages(answers))] == ["u1", "u2", "u3"]


async def test_more_pages_than_the_total_implies_is_an_error() -> None:
    fetched: list[int] = []

    async def fetch(number: int) -> Mapping[str, Any]:
        fetched.append(number)
        return page(number, more=True, total=3)

    with pytest.raises(Ef45Unavailable, match=r"total 3 at 1 a page means 3 pages"):
        await collect(fetch)
    assert fetched == [1, 2, 3, 4]  # one page of slack, then the error


async def test_without_a_total_the_hard_cap_ends_the_walk() -> None:
    async def fetch(number: int) -> Mapping[str, Any]:
        return page(number, more=True)

    with pytest.raises(Ef45Unavailable, match=r"more than 25 pages claimed \(max_pages\)"):
        await collect(fetch, max_pages=25)


async def test_a_page_that_repeats_earlier_items_while_claiming_more_is_an_error() -> None:
    async def fetch(_number: int) -> Mapping[str, Any]:
        return page(1, more=True)  # a terminal that ignores `page`

    with pytest.raises(Ef45Unavailable, match="page 2 holds only items of earlier pages"):
        await collect(fetch)
