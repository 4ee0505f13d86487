"""Bounds on what a remote peer can make syncd read: answer bodies, counted as they arrive.

A terminal or cloud service that misbehaves (a firmware bug, a compromised device) may
announce or stream a body of any size, or never end one. Every answer is read through a
byte budget: past it, the read stops with `BodyTooLarge` and the connection is dropped,
so the process's memory stays bounded whatever the peer sends.

`BodyTooLarge` is an `httpx.TransportError`, so callers catch it before the generic
`httpx.HTTPError` to name the limit. Both targets read their answers through
`syncd.targets.exchange` (the deadline, and compressed answers decoded within the limit).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

MiB = 1024 * 1024


class BodyTooLarge(httpx.TransportError):
    """An answer's body is (or says it will be) over `limit` bytes."""

    def __init__(self, limit: int, *, request: httpx.Request | None = None) -> None:
        super().__init__(f"answer body over the limit of {limit} bytes", request=request)
        self.limit = limit


class ByteBudget:
    """Counts a body's bytes as they arrive; `take` raises BodyTooLarge past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        """Count `size` more bytes; raise BodyTooLarge if the total is over the limit."""
        self.used += size
        if self.used > self.limit:
            raise BodyTooLarge(self.limit)


class ListBudget:
    """The bytes one list walk may still read in all its pages (`max_list_total_bytes`):
    a peer that serves every page up to its size limit, for as many pages as it claims,
    still cannot exhaust memory. `spend` raises `error` (the target's temporary error)
    past the limit, naming `what` and the key."""

    def __init__(self, limit: int, what: str, error: Callable[[str], Exception]) -> None:
        self.limit = limit
        self.what = what
        self.error = error
        self.spent = 0

    def spend(self, size: int) -> None:
        """Count one page of `size` bytes; raise past the limit."""
        self.spent += size
        if self.spent > self.limit:
            raise self.error(
                f"{self.what}: the list's pages passed {self.limit} bytes in all "
                "(max_list_total_bytes); the list was not read"
            )


def check_length(headers: httpx.Headers, limit: int) -> None:
    """Raise BodyTooLarge if the answer declares a Content-Length over `limit`."""
    declared = headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise BodyTooLarge(limit)
