"""Walk the EF-45's paged lists (`/subjects`, `/user-info`, `/faces`, `/logs`, …).

A page answers `{status_code, reason_phrase, items, page, page_size, total, has_more}`
with `page` 1-based. A list cut off midway is an error, never a short list: an answer
without an `items` list, or an empty page that claims more, raises `Ef45Unavailable`.

The walk is bounded whatever the terminal claims: it stops with `Ef45Unavailable` when a
page that claims more is past the page count the terminal's own `total` implies (total
over the first page's size, plus one page of slack for users enrolled during the walk),
or past `max_pages` in any case (a terminal that reports no usable `total`); and when a
page that claims more brings no item not already seen (a terminal that ignores `page`).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from syncd.targets.ef45.errors import Ef45Unavailable

FetchPage = Callable[[int], Awaitable[Mapping[str, Any] | None]]
"""Given a 1-based page number, return that page's answer, or None for an empty list."""

MAX_PAGES = 10_000
"""Default hard cap of pages in one list (`max_pages`): 500 000 users at 50 a page."""
SLACK_PAGES = 1
"""Pages allowed past what `total` implies: users enrolled while the list is walked."""
MAX_LIST_TOTAL_BYTES = 512 * 1024 * 1024
"""Default most bytes of answers one list walk reads in all (`max_list_total_bytes`)."""


def page_items(answer: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Return the `items` of a page answer; raise Ef45Unavailable if they are not a list."""
    items = answer.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Ef45Unavailable(f"{where}: malformed page answer (no items list)")
    return items


async def iter_pages(
    fetch: FetchPage, where: str, *, max_pages: int = MAX_PAGES
) -> AsyncIterator[dict[str, Any]]:
    """Yield every item of a paged list, fetching page 1, 2, … while `has_more` is true.

    Raise Ef45Unavailable if a page is malformed, is empty or repeats only items seen
    before but claims more pages, or if more pages are claimed than the terminal's
    `total` implies (+ SLACK_PAGES) or than `max_pages`.
    """
    bound = _PageBound(where, max_pages)
    page = 1
    while True:
        answer = await fetch(page)
        if answer is None:
            return
        items = page_items(answer, where)
        fresh = bound.fresh(items)
        for item in items:
            yield item
        if not answer.get("has_more"):
            return
        if not items:
            raise Ef45Unavailable(f"{where}: page {page} is empty but has_more is true")
        if not fresh:
            raise Ef45Unavailable(
                f"{where}: page {page} holds only items of earlier pages but has_more is true"
            )
        bound.check(page, answer, len(items))
        page += 1


class _PageBound:
    """The limits of one walk: items seen so far, and the page count allowed."""

    def __init__(self, where: str, max_pages: int) -> None:
        self.where = where
        self.max_pages = max_pages
        self.first_size = 0
        self.seen: set[object] = set()

    def fresh(self, items: list[dict[str, Any]]) -> bool:
        """Remember `items`; return whether any of them was not seen on an earlier page."""
        before = len(self.seen)
        self.seen.update(_identity(item) for item in items)
        return len(self.seen) > before or not items

    def check(self, page: int, answer: Mapping[str, Any], size: int) -> None:
        """Raise Ef45Unavailable if page `page + 1` is past the bound (it claims more)."""
        self.first_size = self.first_size or size
        if page >= self.max_pages:
            raise Ef45Unavailable(
                f"{self.where}: more than {self.max_pages} pages claimed (max_pages); "
                "the list was not read"
            )
        total = answer.get("total")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            allowed = math.ceil(total / self.first_size) + SLACK_PAGES
            if page >= allowed:
                raise Ef45Unavailable(
                    f"{self.where}: page {page} claims more, but total {total} at "
                    f"{self.first_size} a page means {allowed - SLACK_PAGES} pages; "
                    "the list was not read"
                )


def _identity(item: Mapping[str, Any]) -> object:
    """Return what tells one list item from another: its uuid, face sub_id and log id,
    or for an item with none of them its whole content."""
    key = (item.get("user_uuid"), item.get("sub_id"), item.get("id"))
    if key != (None, None, None):
        return repr(key)
    return json.dumps(item, sort_keys=True, default=str)
