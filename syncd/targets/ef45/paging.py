"""Walk the EF-45's paged lists (`/subjects`, `/user-info`, `/faces`, `/logs`, …).

A page answers `{status_code, reason_phrase, items, page, page_size, total, has_more}`
with `page` 1-based. A list cut off midway is an error, never a short list: an answer
without an `items` list, or an empty page that claims more, raises `Ef45Unavailable`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from syncd.targets.ef45.errors import Ef45Unavailable

FetchPage = Callable[[int], Awaitable[Mapping[str, Any] | None]]
"""Given a 1-based page number, return that page's answer, or None for an empty list."""


def page_items(answer: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Return the `items` of a page answer; raise Ef45Unavailable if they are not a list."""
    items = answer.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Ef45Unavailable(f"{where}: malformed page answer (no items list)")
    return items


async def iter_pages(fetch: FetchPage, where: str) -> AsyncIterator[dict[str, Any]]:
    """Yield every item of a paged list, fetching page 1, 2, … while `has_more` is true.

    Raise Ef45Unavailable if a page is malformed, or is empty but claims more pages.
    """
    page = 1
    while True:
        answer = await fetch(page)
        if answer is None:
            return
        items = page_items(answer, where)
        for item in items:
            yield item
        if not answer.get("has_more"):
            return
        if not items:
            raise Ef45Unavailable(f"{where}: page {page} is empty but has_more is true")
        page += 1
