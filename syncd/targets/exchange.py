"""Bounded exchanges with a remote peer (EF-45 and CLUe, over httpx): a body read up to a
limit, an answer within a deadline. The byte budget itself is `syncd.targets.limits`;
this module adds the deadline and gzip or deflate decoded within the limit.

A peer that misbehaves (a firmware bug, a half-dead link, a compromised device) can send
an endless body, a huge one, a gzip bomb, or a byte a second for ever. Whatever it sends,
`exchange` holds at most `limit` bytes of its body (compressed and decompressed alike)
and returns or fails within `total_s` seconds in all: connecting, waiting, reading.

Contract:
- The request asks for an uncompressed answer (`Accept-Encoding: identity`); an answer
  compressed all the same with gzip or deflate is decompressed here, bounded by `limit`;
  any other encoding is a BodyUndecodable.
- `Content-Length` over the limit fails before a byte of the body is read; without one
  (chunked, or read until close) the body fails as soon as it passes the limit.
- The exchange's deadline raises TimeoutError (the builtin, as `asyncio.timeout` does);
  httpx's own errors (connect, read, protocol) pass through for the caller to map.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

import httpx

from syncd.targets.limits import BodyTooLarge, ByteBudget, check_length

__all__ = ["BodyTooLarge", "BodyUndecodable", "Exchanged", "exchange", "read_body"]

IDENTITY = {"Accept-Encoding": "identity"}
"""Headers that ask a peer for an uncompressed answer (merge into a request's)."""


class BodyUndecodable(Exception):
    """The body comes in a content encoding syncd does not decode, or a broken one."""


@dataclass(frozen=True)
class Exchanged:
    """A finished exchange: the answer (its body already read and closed) and the body."""

    response: httpx.Response
    body: bytes


async def exchange(
    http: httpx.AsyncClient, request: httpx.Request, *, limit: int, total_s: float
) -> Exchanged:
    """Send `request`, read its answer's body up to `limit` bytes, all within `total_s`.

    Raise TimeoutError past `total_s`, BodyTooLarge past `limit`, BodyUndecodable for an
    encoding that cannot be decoded, or httpx's transport errors.
    """
    for name, value in IDENTITY.items():
        request.headers[name] = value
    async with asyncio.timeout(total_s):
        response = await http.send(request, stream=True)
        try:
            body = await read_body(response, limit)
        finally:
            await response.aclose()
    return Exchanged(response, body)


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """Return the (decoded) body of the streamed `response`, never holding more than
    `limit` bytes of it; raise BodyTooLarge or BodyUndecodable."""
    check_length(response.headers, limit)
    budget = ByteBudget(limit)
    chunks: list[bytes] = []
    try:
        async for chunk in response.aiter_raw():
            budget.take(len(chunk))
            chunks.append(chunk)
    except httpx.StreamConsumed:
        # Built with its body in memory (httpx.MockTransport in tests): nothing to stream.
        if len(response.content) > limit:
            raise BodyTooLarge(limit) from None
        return response.content
    return decode(b"".join(chunks), response.headers.get("Content-Encoding", ""), limit)


def decode(raw: bytes, encoding: str, limit: int) -> bytes:
    """Return `raw` decoded from the `Content-Encoding` list `encoding` (applied in
    order, so undone in reverse), each stage bounded by `limit`."""
    data = raw
    for name in reversed([part.strip().lower() for part in encoding.split(",")]):
        if name in ("", "identity"):
            continue
        if name in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, limit)
        elif name == "deflate":
            try:  # RFC 9110's deflate is zlib-wrapped; some servers send it raw
                data = _inflate(data, zlib.MAX_WBITS, limit)
            except BodyUndecodable:
                data = _inflate(data, -zlib.MAX_WBITS, limit)
        else:
            raise BodyUndecodable(f"answer in content encoding {name[:40]!r}")
    return data


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise BodyUndecodable("answer body not decodable as it says it is encoded") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(limit)
    return out
