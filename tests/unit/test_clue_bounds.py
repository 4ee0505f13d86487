"""CLUe's bounds without a server: id checks, bounded bodies, page caps, the 429 deadline.

The client tests use httpx.MockTransport; bodies that never end are async streams that
count what was pulled from them, so a test can assert the reader stopped at its limit.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from syncd.targets.clue import ids
from syncd.targets.clue.client import (
    AuthListUnavailable,
    ClueBadAnswer,
    ClueClient,
    ClueRateLimited,
    ClueUnavailable,
)
from syncd.targets.clue.events import MalformedEvent, clue_event
from syncd.targets.clue.paging import PageCap
from syncd.targets.clue.ratelimit import RateLimitGate
from syncd.targets.exchange import BodyTooLarge, BodyUndecodable, decode
from tests.unit.test_event_mapping import NOW

CHUNK = 64 * 1024


class Endless(httpx.AsyncByteStream):
    """A body that never ends; `pulled` counts the bytes handed out."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.pulled += CHUNK
            yield b" " * CHUNK


def _client(handler: Any, **kwargs: Any) -> ClueClient:
    return ClueClient(
        base_url="https://clue.invalid",
        place_id=7,
        api_key="k",
        min_interval_ms=0,
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), (2**63 - 1, 2**63 - 1), (0, None), (-1, None), (2**63, None), (True, None)],
)
def test_auth_id_is_a_positive_64_bit_int(value: object, expected: int | None) -> None:
    assert ids.auth_id(value) == expected
    assert ids.auth_id("7") is None  # text is not an authId (the answer's own type is)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", 12), ("12\r\n", None), ("²", None), ("0", None), ("9" * 20, None), (None, None)],
)
def test_stored_remote_ids(text: str | None, expected: int | None) -> None:
    assert ids.auth_id_text(text) == expected


@pytest.mark.parametrize(
    "key", ["x\r\nX: 1", "a\x00b", "tab\there", "del\x7f", "nel\x85", "ls\u2028", "", "k" * 256]
)
def test_user_keys_with_control_characters_or_too_long_are_refused(key: str) -> None:
    assert ids.user_key(key) is None
    assert ids.user_key("José-ÅÄÖ 7") == "José-ÅÄÖ 7"


def test_log_ids_and_cursors() -> None:
    assert ids.log_id("XjIAM5ABcB2c2xupDI6m") == "XjIAM5ABcB2c2xupDI6m"
    assert ids.log_id(25280) == "25280"
    assert ids.log_id("x" * 129) is None
    assert ids.log_id("a\nb") is None
    now = 1_718_842_554_980
    assert ids.cursor_ms(str(now), now) == now
    assert ids.cursor_ms(str(now + ids.CURSOR_AHEAD_MS + 1), now) is None
    for bad in ("abc", "-5", "1e9", "12\r\n", "9" * 17):
        assert ids.cursor_ms(bad, now) is None


def test_an_event_with_a_malformed_id_is_refused_and_odd_fields_left_out() -> None:
    with pytest.raises(MalformedEvent):
        clue_event("cloud", {"logId": "a\r\nb", "eventAt": 1}, {}, NOW)
    with pytest.raises(MalformedEvent):
        clue_event("cloud", {"deviceId": "d\n", "localLogId": 1, "eventAt": 1}, {}, NOW)
    raw = {
        "logId": "L1",
        "eventAt": 2**80,  # would overflow a datetime: read as missing
        "eventType": "X\r\nY",
        "userId": "u\r\n",
        "doorId": 3,
        "doorName": "evil\nname",
    }
    event = clue_event("cloud", raw, {}, NOW)
    assert (event.occurred_at, event.event_type, event.person_key) == (NOW, "UNKNOWN", None)
    assert event.detail == "door 3"


def test_decode_bounds_a_gzip_bomb_and_refuses_unknown_encodings() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = packer.compress(b"\0" * (64 * 1024 * 1024)) + packer.flush()
    assert len(bomb) < 1024 * 1024
    with pytest.raises(BodyTooLarge):
        decode(bomb, "gzip", 1024 * 1024)
    assert decode(zlib.compress(b"{}"), "deflate", 10) == b"{}"
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert decode(raw_deflate.compress(b"[1]") + raw_deflate.flush(), "deflate", 10) == b"[1]"
    with pytest.raises(BodyUndecodable):
        decode(b"x", "br", 10)
    with pytest.raises(BodyUndecodable):
        decode(b"not gzip", "gzip", 10)


def test_page_cap_follows_total_then_the_hard_cap() -> None:
    cap = PageCap(hard=50)
    assert not cap.exceeded(0, 100, 250)  # 3 pages implied, plus one
    assert not cap.exceeded(2, 100, 10**9)  # the first page's total counts
    assert cap.exceeded(3, 100, 250)
    no_total = PageCap(hard=5)
    assert not no_total.exceeded(3, 100, None)
    assert no_total.exceeded(4, 100, None)


async def test_an_endless_body_is_cut_at_its_limit() -> None:
    stream = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "identity"
        return httpx.Response(200, stream=stream)

    async with _client(handler, max_body_bytes=1024 * 1024) as clue:
        with pytest.raises(ClueUnavailable, match=r"over 1048576 bytes \(max_body_bytes\)"):
            await clue.create_auth({"user": {"key": "k"}})
    assert stream.pulled <= 1024 * 1024 + 2 * CHUNK


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    stream = Endless()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(2**40)}, stream=stream)

    async with _client(handler) as clue:
        with pytest.raises(ClueUnavailable, match="max_list_body_bytes"):
            [a async for a in clue.iter_auths()]
    assert stream.pulled == 0


async def test_a_write_answered_with_a_malformed_id_is_a_bad_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = {"authId": "5\r\nX: 1", "user": {"key": "k"}}
        return httpx.Response(200, json={"status": True, "data": data})

    async with _client(handler) as clue:
        with pytest.raises(ClueBadAnswer, match="not a positive integer") as caught:
            await clue.create_auth({"user": {"key": "k"}})
    assert caught.value.target_level is False  # that write's, and it may have been done


async def test_endless_auth_paging_stops_at_max_pages() -> None:
    pages: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        pages.append(page)
        data = [{"authId": page * 2 + i + 1, "user": {"key": f"k{page}-{i}"}} for i in range(2)]
        return httpx.Response(200, json={"data": data, "total": 10**12})

    async with _client(handler, max_pages=7) as clue:
        with pytest.raises(AuthListUnavailable, match="did not end after 7 pages"):
            [a async for a in clue.iter_auths(page_size=2)]
    assert pages == list(range(7))


async def test_429s_stop_at_the_deadline_and_the_place_then_rests() -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={"status": False})

    gate = RateLimitGate()
    async with _client(handler, max_429_wait_s=0.3, gate=gate) as clue:
        began = time.monotonic()
        with pytest.raises(ClueRateLimited, match=r"max_429_wait_s 0\.3"):
            await clue.create_auth({"user": {"key": "k"}})
        # Retry-After 3600 was cut to what was left of the 0.3 s: one wait, two tries.
        assert time.monotonic() - began < 3
        assert sent == ["POST", "POST"]
        with pytest.raises(ClueRateLimited, match="not sent"):
            await clue.delete_auth(5)
    assert sent == ["POST", "POST"]


def test_the_gate_reopens_after_its_time() -> None:
    now = [100.0]
    gate = RateLimitGate(clock=lambda: now[0])
    gate.check("GET /x")
    gate.close(60, "429 for 60 s")
    with pytest.raises(ClueRateLimited, match="429 for 60 s"):
        gate.check("GET /x")
    now[0] += 60
    gate.check("GET /x")


async def test_listed_auths_are_kept_without_their_credentials() -> None:
    listed = {
        "authId": 3,
        "lastModifiedAt": 17,
        "user": {"key": "k", "name": "N" * 1000, "userId": 9},
        "auth": {"activeStatus": "ACTIVE", "credentials": {"faceImages": ["A" * 100_000]}},
        "padding": "P" * 100_000,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [listed], "total": 1})

    async with _client(handler) as clue:
        [found] = [a async for a in clue.iter_auths()]
    assert (found.auth_id, found.user_key, found.active, found.last_modified_at) == (
        3,
        "k",
        True,
        17,
    )
    assert found.raw == {
        "authId": 3,
        "lastModifiedAt": 17,
        "user": {"key": "k", "name": "N" * 255, "userId": 9},
        "auth": {"activeStatus": "ACTIVE"},
    }
