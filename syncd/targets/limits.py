"""Bounds on what a remote peer can make syncd read: answer bodies, counted as they arrive.

A terminal or cloud service that misbehaves (a firmware bug, a compromised device) may
announce or stream a body of any size, or never end one. Every answer is read through a
byte budget: past it, the read stops with `BodyTooLarge` and the connection is dropped,
so the process's memory stays bounded whatever the peer sends.

syncd never asks for a compressed answer (its requests carry no `Accept-Encoding`), so an
answer in a content encoding other than identity is refused outright (`EncodedBody`): a
few kilobytes of gzip can inflate to gigabytes, past any budget counted on the wire.

Both errors are `httpx.TransportError`s, so a transport may raise them under httpx's own
contract; callers catch them before the generic `httpx.HTTPError` to name the limit.
"""

from __future__ import annotations

import httpx

MiB = 1024 * 1024


class BodyTooLarge(httpx.TransportError):
    """An answer's body is (or says it will be) over `limit` bytes."""

    def __init__(self, limit: int, *, request: httpx.Request | None = None) -> None:
        super().__init__(f"answer body over the limit of {limit} bytes", request=request)
        self.limit = limit


class EncodedBody(httpx.TransportError):
    """An answer came in a content encoding syncd did not ask for (gzip, br, …)."""


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


def check_length(headers: httpx.Headers, limit: int) -> None:
    """Raise BodyTooLarge if the answer declares a Content-Length over `limit`."""
    declared = headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise BodyTooLarge(limit)


def check_head(headers: httpx.Headers, limit: int) -> None:
    """Refuse an answer from its headers alone: a declared Content-Length over `limit`
    (BodyTooLarge) or a content encoding other than identity (EncodedBody)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise EncodedBody(f"answer in content encoding {encoding[:40]!r}, which was not asked")
    check_length(headers, limit)


async def read_bounded(response: httpx.Response, limit: int) -> httpx.Response:
    """Given an answer whose body is not read yet (or read already, by a transport that
    bounds it itself), return an equal answer with its body read, at most `limit` bytes.

    Raise BodyTooLarge past the limit (a declared Content-Length over it is refused before
    reading), EncodedBody for a compressed answer; the stream is closed either way.
    """
    try:
        check_head(response.headers, limit)
        budget = ByteBudget(limit)
        chunks: list[bytes] = []
        async for chunk in response.aiter_bytes():
            budget.take(len(chunk))
            chunks.append(chunk)
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=b"".join(chunks),
        extensions=response.extensions,
    )
