"""When a CLUe list walk (the auths of a place; one window of events) ends: at the last
page its answers describe, at the page count the first page's `total` implies (plus
one: the list may grow while read), never past `max_pages` (`PageCap`).
"""

from __future__ import annotations


class PageCap:
    """How many pages a list may take: what the first page's `total` implies (pages of
    the first page's length, plus one: the list may grow while read), never over `hard`."""

    def __init__(self, hard: int) -> None:
        self.hard = hard
        self.implied: int | None = None

    def exceeded(self, page: int, count: int, total: int | None) -> bool:
        """True if reading a page after `page` (0-based; `count` items) would pass the cap."""
        if self.implied is None and total is not None and count > 0:
            self.implied = -(-max(total, 0) // count) + 1
        return page + 1 >= min(self.hard, self.implied or self.hard)

    def describe(self, total: int | None) -> str:
        """The cap as an error names it."""
        return f"total {total}, max_pages {self.hard}"


def last_page(count: int, size: int, read: int, total: int | None) -> bool:
    """True if a page of `count` items (asked for `size`) ends a list of which `read`
    items were read in all, `total` claimed (None: not said)."""
    # With a total, trust it: a server may cut `size` to its own maximum, so a short page
    # is not proof of the end. Without one, a short page is the only sign.
    if count == 0:
        return True
    return read >= total if total is not None else count < size
