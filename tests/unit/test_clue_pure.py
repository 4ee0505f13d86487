"""The CLUe client's pure parts, its answer decoding (httpx.MockTransport), the emulator state."""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from syncd.config import ClueTargetConfig, SecretRef
from syncd.emulators import clue_validate
from syncd.emulators.clue_state import SEVEN_DAYS_MS, ClueApiError, ClueState, TokenBucket
from syncd.targets.clue.client import (
    RETRY_AFTER_CAP_S,
    AuthKeyExists,
    ClueClient,
    ClueRejected,
    UnknownAuth,
    event_windows,
    retry_after_s,
)


def test_event_windows_cover_the_span_once_within_seven_days() -> None:
    windows = event_windows(0, 20 * 24 * 3600 * 1000)
    assert len(windows) == 3
    assert windows[0] == (0, SEVEN_DAYS_MS)
    assert all(end - start <= SEVEN_DAYS_MS for start, end in windows)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(windows))
    assert windows[-1][1] == 20 * 24 * 3600 * 1000
    assert event_windows(5, 5) == [(5, 5)]
    assert event_windows(6, 5) == []


@pytest.mark.parametrize(
    ("header", "attempt", "expected"),
    [("0", 0, 0.0), ("2", 0, 2.0), ("1.5", 3, 1.5), ("-4", 0, 0.0), ("99999", 0, 60.0)],
)
def test_retry_after_seconds(header: str, attempt: int, expected: float) -> None:
    assert retry_after_s(header, attempt) == expected


def test_retry_after_http_date_and_fallback() -> None:
    soon = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8.0 <= retry_after_s(soon, 0) <= 10.0
    assert retry_after_s("not a date", 2) == 4.0
    assert retry_after_s(None, 0) == 1.0
    assert retry_after_s(None, 20) == RETRY_AFTER_CAP_S


def _client(handler: Any) -> ClueClient:
    return ClueClient(
        base_url="https://clue.invalid",
        place_id=7,
        api_key="k",
        min_interval_ms=0,
        transport=httpx.MockTransport(handler),
    )


def _auth(auth_id: int, key: str) -> dict[str, Any]:
    return {"authId": auth_id, "user": {"key": key}, "auth": {"activeStatus": "ACTIVE"}}


@pytest.mark.parametrize(("code", "kind"), [(400, ClueRejected), (409, AuthKeyExists)])
async def test_status_false_in_a_200_body_is_an_error_of_its_code(
    code: int, kind: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        message = "user.key 'x' already exists"  # never read: the code decides
        return httpx.Response(200, json={"code": code, "status": False, "message": message})

    async with _client(handler) as clue:
        with pytest.raises(kind) as raised:
            await clue.create_auth({"user": {"key": "x"}})
    assert type(raised.value) is kind


async def test_bearer_header_and_spring_style_page() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        page = int(request.url.params["page"])
        # authIds from 1: an authId must be a positive integer (ids.auth_id)
        content = (
            [_auth(page * 2 + i + 1, f"k{page * 2 + i}") for i in range(2)] if page < 2 else []
        )
        return httpx.Response(200, json={"data": {"content": content, "totalElements": 4}})

    async with _client(handler) as clue:
        keys = [a.user_key async for a in clue.iter_auths(page_size=2)]
    assert keys == ["k0", "k1", "k2", "k3"]
    assert set(seen) == {"Bearer k"}


async def test_paging_that_does_not_advance_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [_auth(1, "a"), _auth(2, "b")], "total": 9})

    async with _client(handler) as clue:
        with pytest.raises(ClueRejected, match="did not advance"):
            _ = [a async for a in clue.iter_auths(page_size=2)]


async def test_not_found_on_an_item_is_unknown_auth_and_body_is_cut() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, content=json.dumps({"message": "x" * 5000}).encode())

    async with _client(handler) as clue:
        with pytest.raises(UnknownAuth) as caught:
            await clue.delete_auth(3)
        with pytest.raises(ClueRejected):
            await clue.create_auth({})
    assert caught.value.status == 404 and len(str(caught.value)) < 500


def test_token_bucket_refills_and_names_the_wait() -> None:
    bucket = TokenBucket(2, 1.0, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_state_rate_limit_and_forced_429s() -> None:
    clock = [0.0]
    state = ClueState(
        place_id=1, api_key="k", rate_limit=1, window_s=10, monotonic=lambda: clock[0]
    )
    assert state.admit() is None
    assert state.admit() == 10.0
    clock[0] = 10.0
    assert state.admit() is None
    state.force_rate_limit(2, retry_after_s=3)
    assert [state.admit(), state.admit()] == [3.0, 3.0]


def test_validation_names_every_bad_field() -> None:
    found = clue_validate.problems(
        {
            "user": {"key": ""},
            "auth": {
                "activeStatus": "ACTIVE",
                "startTime": "soon",
                "endTime": 5,
                "doorAccessType": "ALL_DOOR",
                "scheduleType": "ALWAYS",
                "credentials": {
                    "cards": [{"cardNumber": "0x1F", "formatType": "CSN"}],
                    "faceImages": ["not base64!"],
                    "pin": "12a",
                },
            },
        }
    )
    fields = {problem.split(":")[0] for problem in found}
    assert fields == {
        "user.name",
        "user.key",
        "auth.startTime",
        "auth.credentials.cards[0].cardNumber",
        "auth.credentials.faceImages[0]",
        "auth.credentials.pin",
    }
    assert clue_validate.problems([]) == ["body: must be a JSON object"]


def test_state_refuses_duplicate_key_on_update() -> None:
    state = ClueState(place_id=1, api_key="k")
    base = {
        "activeStatus": "ACTIVE",
        "startTime": 1,
        "endTime": 2,
        "doorAccessType": "ALL_DOOR",
        "scheduleType": "ALWAYS",
        "credentials": {},
    }
    first = state.create_auth({"user": {"key": "a", "name": "A"}, "auth": base})
    state.create_auth({"user": {"key": "b", "name": "B"}, "auth": base})
    with pytest.raises(ClueApiError) as caught:
        state.update_auth(first["authId"], {"user": {"key": "b", "name": "A"}, "auth": base})
    assert caught.value.status == 409 and "already exists" in caught.value.message


def _config(**settings: Any) -> ClueTargetConfig:
    return ClueTargetConfig(type="clue", place_id=1, api_key=SecretRef(env="K"), **settings)


def test_auth_paths_default_to_the_newer_guide() -> None:
    assert _config().clue_auth_paths() == (
        "/v1/places/{place_id}/auths",
        "/v1/places/{place_id}/auths/{auth_id}",
    )
    assert _config().events_path == "/v1/be/events"  # the only documented events query


def test_api_base_and_overrides() -> None:
    assert _config(api_base="/v1/be").clue_auth_paths() == (
        "/v1/be/places/{place_id}/auths",
        "/v1/be/places/{place_id}/auths/{auth_id}",
    )
    custom = _config(auth_path="/api/p/{place_id}/a")
    assert custom.clue_auth_paths() == ("/api/p/{place_id}/a", "/api/p/{place_id}/a/{auth_id}")
    item = _config(auth_item_path="/x/{place_id}/auth/{auth_id}")
    assert item.clue_auth_paths()[1] == "/x/{place_id}/auth/{auth_id}"


@pytest.mark.parametrize(
    "settings",
    [
        {"api_base": "v1"},
        {"api_base": "/v1/"},
        {"auth_path": "/v1/auths"},
        {"auth_item_path": "/v1/places/{place_id}/auths"},
        {"events_overlap_s": -1},
    ],
)
def test_bad_paths_and_overlap_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _config(**settings)
