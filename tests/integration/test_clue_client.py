"""ClueClient against the CLUe emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import ClueState
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer
from syncd.errors import PermanentTargetError, TemporaryTargetError
from syncd.targets.clue.client import (
    AuthKeyExists,
    AuthListUnavailable,
    ClueClient,
    ClueKeyRefused,
    ClueRateLimited,
    ClueRejected,
    ClueTlsError,
    ClueUnavailable,
    UnknownAuth,
)
from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID, SelfSignedCert

DAY_MS = 24 * 3600 * 1000
START = 1_718_809_200_000
END = 1_718_895_540_000


def body(key: str, *, name: str = "Ada Lovelace", status: str = "ACTIVE") -> dict[str, Any]:
    """A valid auth body in the guide's shape."""
    return {
        "user": {"key": key, "name": name},
        "auth": {
            "activeStatus": status,
            "startTime": START,
            "endTime": END,
            "doorAccessType": "SPECIFIC",
            "doorIds": [234, 235],
            "scheduleType": "ALWAYS",
            "credentials": {
                "cards": [{"cardNumber": "12345", "formatType": "CSN"}],
                "faceImages": ["/9j/4AAQSkZJRgABAQAASABIAA=="],
                "pin": 1234,
            },
        },
    }


def client(url: str, **kwargs: Any) -> ClueClient:
    settings: dict[str, Any] = {"api_key": CLUE_API_KEY, "min_interval_ms": 0}
    return ClueClient(base_url=url, place_id=CLUE_PLACE_ID, **(settings | kwargs))


@pytest.fixture
def faulty_server(request: pytest.FixtureRequest, clue_state: ClueState) -> Iterator[str]:
    """The emulator behind the Faults given by indirect parametrization."""
    with EmulatorServer(create_clue_app(clue_state, request.param)) as server:
        yield server.url


async def test_create_update_deactivate_delete(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    async with client(clue_server.url) as clue:
        created = await clue.create_auth(body("k-1"))
        assert created.user_key == "k-1" and created.active
        assert created.raw["user"]["name"] == "Ada Lovelace"
        assert clue_state.auths[created.auth_id].key == "k-1"

        renamed = await clue.update_auth(created.auth_id, body("k-1", name="Ada King"))
        assert renamed.auth_id == created.auth_id
        assert clue_state.auths[created.auth_id].name == "Ada King"

        inactive = await clue.update_auth(created.auth_id, body("k-1", status="INACTIVE"))
        assert not inactive.active and not clue_state.auths[created.auth_id].active

        await clue.delete_auth(created.auth_id)
        assert clue_state.auths == {}
        with pytest.raises(UnknownAuth):
            await clue.delete_auth(created.auth_id)
        with pytest.raises(UnknownAuth):
            await clue.update_auth(created.auth_id, body("k-1"))

    kinds = [e["eventType"] for e in clue_state.events]
    assert kinds == ["AUTH_CREATED", "AUTH_UPDATED", "AUTH_DEACTIVATED", "AUTH_DELETED"]


async def test_list_pages_and_find_by_key(clue_server: EmulatorServer) -> None:
    async with client(clue_server.url) as clue:
        ids = [(await clue.create_auth(body(f"k-{i}"))).auth_id for i in range(7)]
        listed = [auth async for auth in clue.iter_auths(page_size=3)]
        assert [a.auth_id for a in listed] == ids
        found = await clue.find_auth_by_key("k-5")
        assert found is not None and found.auth_id == ids[5]
        assert await clue.find_auth_by_key("nobody") is None


async def test_a_list_past_its_byte_budget_fails_instead_of_filling_memory(
    clue_server: EmulatorServer,
) -> None:
    async with client(clue_server.url) as clue:
        for i in range(12):
            await clue.create_auth(body(f"k-{i}"))
    async with client(clue_server.url, max_list_total_bytes=2048) as clue:
        with pytest.raises(
            AuthListUnavailable, match=r"passed 2048 bytes in all \(max_list_total_bytes\)"
        ):
            _ = [auth async for auth in clue.iter_auths(page_size=3)]


async def test_duplicate_key_is_refused(clue_server: EmulatorServer) -> None:
    async with client(clue_server.url) as clue:
        await clue.create_auth(body("same"))
        with pytest.raises(AuthKeyExists) as caught:
            await clue.create_auth(body("same", name="Other"))
    assert isinstance(caught.value, PermanentTargetError)
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("user", "name"), None, "user.name"),
        (("auth", "doorIds"), [], "auth.doorIds"),
        (("auth", "endTime"), START, "auth.endTime"),
        (("auth", "activeStatus"), "MAYBE", "auth.activeStatus"),
        (("auth", "scheduleType"), "SPECIFIC", "auth.scheduleId"),
    ],
)
async def test_invalid_body_is_rejected_naming_the_field(
    clue_server: EmulatorServer, path: tuple[str, str], value: object, field: str
) -> None:
    bad = body("k-bad")
    bad[path[0]][path[1]] = value
    async with client(clue_server.url) as clue:
        with pytest.raises(ClueRejected) as caught:
            await clue.create_auth(bad)
    assert field in str(caught.value)
    assert caught.value.status == 400


async def test_refused_key_never_appears_in_the_error(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    wrong = "wrong-secret-key-0d2b"
    async with client(clue_server.url, api_key=wrong) as clue:
        with pytest.raises(ClueKeyRefused) as caught:
            await clue.create_auth(body("k-1"))
        assert wrong not in repr(clue)
    message = str(caught.value)
    assert "API key" in message and wrong not in message and CLUE_API_KEY not in message
    assert isinstance(caught.value, PermanentTargetError)
    assert clue_state.auths == {}


async def test_key_already_in_bearer_form_is_sent_as_is(clue_server: EmulatorServer) -> None:
    async with client(clue_server.url, api_key=f"Bearer {CLUE_API_KEY}") as clue:
        assert (await clue.create_auth(body("k-1"))).user_key == "k-1"


async def test_tls_without_ca_file_fails_clearly(clue_tls_server: EmulatorServer) -> None:
    assert clue_tls_server.url.startswith("https://")
    async with client(clue_tls_server.url) as clue:
        with pytest.raises(ClueTlsError) as caught:
            await clue.create_auth(body("k-1"))
    assert "ca_file" in str(caught.value)
    assert isinstance(caught.value, PermanentTargetError)


async def test_tls_with_ca_file_works(
    clue_tls_server: EmulatorServer, clue_tls_cert: SelfSignedCert, clue_state: ClueState
) -> None:
    async with client(clue_tls_server.url, ca_file=clue_tls_cert.certfile) as clue:
        await clue.create_auth(body("k-1"))
    assert clue_state.auth_by_key("k-1") is not None


async def test_writes_are_paced(clue_server: EmulatorServer, clue_state: ClueState) -> None:
    count, interval = 8, 0.03
    async with client(clue_server.url, min_interval_ms=30) as clue:
        began = time.monotonic()
        created = [await clue.create_auth(body(f"k-{i}")) for i in range(count // 2)]
        # Concurrent writers share the pacing: starts stay `interval` apart.
        await asyncio.gather(*(clue.create_auth(body(f"c-{i}")) for i in range(count // 2)))
        elapsed = time.monotonic() - began
        await clue.update_auth(created[0].auth_id, body("k-0", name="B"))
    assert elapsed >= (count - 1) * interval
    # Server-side arrival gaps jitter (the first one carries the TCP connect), but no
    # write can arrive before it was sent: the last of 9 writes arrives 8 intervals on.
    writes = clue_state.writes()
    assert len(writes) == count + 1
    assert writes[-1].at - began >= count * interval


@pytest.mark.slow
async def test_fifty_creates_at_the_vendor_interval(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    async with client(clue_server.url, min_interval_ms=300) as clue:
        began = time.monotonic()
        for i in range(50):
            await clue.create_auth(body(f"bulk-{i}"))
        elapsed = time.monotonic() - began
    assert elapsed >= 49 * 0.3
    assert len(clue_state.auths) == 50


async def test_a_429_storm_loses_no_write(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    clue_state.force_rate_limit(6, retry_after_s=0)
    async with client(clue_server.url, max_retries_429=8) as clue:
        for i in range(3):
            await clue.create_auth(body(f"k-{i}"))
        clue_state.force_rate_limit(1, retry_after_s=1)
        began = time.monotonic()
        await clue.create_auth(body("k-late"))
        assert time.monotonic() - began >= 1.0
    assert sorted(a.key for a in clue_state.auths.values()) == ["k-0", "k-1", "k-2", "k-late"]
    assert clue_state.forced_429 == 0


async def test_token_bucket_is_ridden_out(clue_state: ClueState) -> None:
    clue_state.rate_limit, clue_state.window_s = 3, 0.3
    with EmulatorServer(create_clue_app(clue_state)) as server:
        async with client(server.url) as clue:
            for i in range(5):
                await clue.create_auth(body(f"k-{i}"))
    assert len(clue_state.auths) == 5


async def test_429_retries_exhausted_is_temporary_and_writes_nothing(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    clue_state.force_rate_limit(10, retry_after_s=0)
    async with client(clue_server.url, max_retries_429=2) as clue:
        with pytest.raises(ClueRateLimited) as caught:
            await clue.create_auth(body("k-1"))
    assert isinstance(caught.value, TemporaryTargetError)
    assert clue_state.auths == {} and clue_state.forced_429 == 7


async def test_events_across_windows_come_once_in_id_order(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    since = START
    until = since + 20 * DAY_MS
    # Every 11 hours, plus events right on and beside the 7-day window edges.
    times = [since + i * 11 * 3600 * 1000 for i in range(44)]
    times += [since + 7 * DAY_MS, since + 7 * DAY_MS + 1, since + 14 * DAY_MS + 1, until]
    times.sort()
    kinds = ["DEV_FACE_AUTH_SUCCESS", "DEV_DOOR_RELAY_ON", "DEV_FACE_AUTH_FAIL"]
    for i, at in enumerate(times):
        clue_state.add_access_event(
            kinds[i % 3], at_ms=at, auth_id=1000, user_key="k-1", door_id=234
        )
    clue_state.add_access_event("DEV_FACE_AUTH_SUCCESS", at_ms=until + 1)  # outside
    async with client(clue_server.url) as clue:
        events = [e async for e in clue.iter_events(since_ms=since, until_ms=until, page_size=4)]
        faces = [
            e
            async for e in clue.iter_events(
                since_ms=since, until_ms=until, event_types=["DEV_FACE_AUTH_SUCCESS"]
            )
        ]
    expected = [e["logId"] for e in clue_state.events[: len(times)]]
    assert [e["logId"] for e in events] == expected
    assert [e["eventAt"] for e in events] == times
    assert events[0]["userId"] == "k-1" and isinstance(events[0]["localLogId"], int)
    assert len(faces) == len(times[::3])
    assert {e["eventType"] for e in faces} == {"DEV_FACE_AUTH_SUCCESS"}


async def test_emulator_refuses_windows_over_seven_days(clue_server: EmulatorServer) -> None:
    params = {"startTime": START, "endTime": START + 7 * DAY_MS + 1, "placeId": CLUE_PLACE_ID}
    async with httpx.AsyncClient(base_url=clue_server.url) as http:
        response = await http.get(
            "/v1/be/events", params=params, headers={"Authorization": CLUE_API_KEY}
        )
        anonymous = await http.get("/v1/be/events")
        elsewhere = await http.get("/v1/places/999/auths", headers={"Authorization": CLUE_API_KEY})
    assert response.status_code == 400 and "7 days" in response.json()["message"]
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == 401 and anonymous.json()["status"] is False
    assert elsewhere.status_code == 404
    assert "place 999 not found" in elsewhere.json()["message"]


@pytest.mark.parametrize(("api_base", "served"), [("/v1", True), ("/v1/be", False)])
async def test_audit_logs_path_is_served_only_in_the_newer_layout(
    clue_state: ClueState, api_base: str, served: bool
) -> None:
    clue_state.api_base = api_base
    at = int(time.time() * 1000)
    clue_state.add_access_event("DEV_FACE_AUTH_SUCCESS", at_ms=at)
    with EmulatorServer(create_clue_app(clue_state)) as server:
        async with client(server.url, events_path="/v1/audit-logs") as clue:
            if served:
                events = [e async for e in clue.iter_events(since_ms=at - 1, until_ms=at)]
                assert [e["eventType"] for e in events] == ["DEV_FACE_AUTH_SUCCESS"]
            else:
                with pytest.raises(ClueRejected) as caught:
                    async for _ in clue.iter_events(since_ms=at - 1, until_ms=at):
                        pass
                assert caught.value.status == 404


@pytest.mark.parametrize(
    "faulty_server",
    [Faults(error_rate=1.0), Faults(drop_rate=1.0), Faults(timeout_rate=1.0, timeout_s=2.0)],
    indirect=True,
    ids=["503", "drop", "timeout"],
)
async def test_server_faults_are_temporary(faulty_server: str, clue_state: ClueState) -> None:
    async with client(faulty_server, timeout_s=0.5) as clue:
        with pytest.raises(ClueUnavailable) as caught:
            await clue.create_auth(body("k-1"))
    assert isinstance(caught.value, TemporaryTargetError)
    assert CLUE_API_KEY not in str(caught.value)


async def test_unreachable_server_is_temporary() -> None:
    with EmulatorServer(create_clue_app(ClueState(place_id=1, api_key="x"))) as server:
        url = server.url
    async with client(url, timeout_s=1) as clue:
        with pytest.raises(ClueUnavailable):
            await clue.delete_auth(1)
