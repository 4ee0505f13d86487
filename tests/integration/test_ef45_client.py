"""The EF-45 client against the emulator over real HTTP on loopback, on both firmwares."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.server import EmulatorServer, free_port
from syncd.targets.ef45.client import (
    CardInUse,
    DeviceFull,
    Ef45Client,
    Ef45Rejected,
    Ef45Unavailable,
    Ef45User,
    LockBusy,
    LockLost,
    UnknownUser,
    UserExists,
)
from syncd.targets.ef45.errors import FileMissing
from syncd.targets.tls import ssl_context
from tests.fixtures.ef45 import EF45_FIRMWARES, EF45_PROFILE_NAMES, EF45_SCHEMES


@pytest.fixture(params=EF45_PROFILE_NAMES)
def ef45_profile(request: pytest.FixtureRequest) -> str:
    """Every test with a terminal runs against both emulator behaviours
    (`docs/ef45-behaviour.md`)."""
    return str(request.param)


@pytest.fixture(params=EF45_SCHEMES)
def ef45_scheme(request: pytest.FixtureRequest) -> str:
    """Every test runs over HTTP and over HTTPS (a self-signed certificate given as the
    client's `ca_file`): one client, one code path for both."""
    return str(request.param)


both_firmwares = pytest.mark.parametrize("ef45_firmware", EF45_FIRMWARES)
PIN = "90210"
TEMPLATE = base64.b64encode(bytes(range(256)) * 2).decode()


def client(server: EmulatorServer, **options: object) -> Ef45Client:
    options = {"ca_file": server.certfile, "timeout_s": 2.0, **options}
    return Ef45Client(base_url=server.url, **options)  # type: ignore[arg-type]


def subject(uuid: str, **fields: object) -> dict[str, object]:
    return {"user_uuid": uuid, "first_name": "Ann", "last_name": "Doe", **fields}


# -- session -------------------------------------------------------------------------


@both_firmwares
async def test_session_reads_the_device_and_releases_the_lock(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_firmware: str
) -> None:
    async with client(ef45_server) as ef45:
        assert ef45_state.lock_uid is not None
        assert ef45.app_version == ("1.3.2" if ef45_firmware == "new" else "1.2.20")
        assert ef45.record_version == 8976
        assert ef45.uses_batch is (ef45_firmware == "new")
    assert ef45_state.lock_uid is None


async def test_lock_released_after_an_error_inside(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with client(ef45_server):
            raise RuntimeError("boom")
    assert ef45_state.lock_uid is None


async def test_lock_released_after_cancellation_mid_request(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_faults: Faults
) -> None:
    async def session() -> None:
        async with client(ef45_server) as ef45:
            ef45_faults.stall_ms = 5000  # the next request hangs until it is cancelled
            await ef45.get_user("a")

    task = asyncio.create_task(session())
    assert await asyncio.to_thread(ef45_faults.stall_arrived.wait, 10)  # GET is at the device
    ef45_faults.stall_ms = 0  # the release (DELETE /lock) goes through at once
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ef45_state.lock_uid is None


async def test_release_survives_a_cancellation_during_exit(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_faults: Faults
) -> None:
    async def session() -> None:
        async with client(ef45_server):
            ef45_faults.stall_ms = 300  # holds the DELETE /lock of the exit before it acts

    task = asyncio.create_task(session())
    assert await asyncio.to_thread(ef45_faults.stall_arrived.wait, 10)  # DELETE is at the device
    assert not task.done()
    task.cancel()  # lands while the release is in flight
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ef45_state.lock_uid is None


async def test_lock_busy_unless_stealing(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    other = ef45_state.acquire_lock()
    with pytest.raises(LockBusy) as busy:
        async with client(ef45_server):
            pass
    expected = ef45_state.behaviour.lock_busy_status  # 409 device, 423 lenient
    assert busy.value.status == expected and other not in str(busy.value)
    assert ef45_state.lock_uid == other
    async with client(ef45_server, steal_lock=True) as ef45:
        assert ef45_state.lock_uid not in (None, other)
        assert await ef45.get_user("a") is None
    assert ef45_state.lock_uid is None


async def test_lock_held_by_other_fault(ef45_server: EmulatorServer, ef45_state: Ef45State) -> None:
    ef45_state.lock_held_by_other = True
    with pytest.raises(LockBusy):
        async with client(ef45_server):
            pass
    async with client(ef45_server, steal_lock=True) as ef45:
        await ef45.door_status()
    assert ef45_state.lock_uid is None


@both_firmwares
async def test_lock_dropped_mid_session_is_retaken(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    ef45_state.drop_lock_after = 2  # every lock is forgotten after two locked calls
    async with client(ef45_server) as ef45:
        await ef45.create_user(subject("a"), {"card": "01"}, [{"sub_id": 0}])
        await ef45.update_user(subject("a", last_name="Roe"), {"card": "02"}, [{"sub_id": 1}])
        user = await ef45.get_user("a")
        assert user is not None and user.subject["last_name"] == "Roe"
        assert [f["sub_id"] for f in user.faces] == [1]
    assert ef45_state.subjects["a"]["last_name"] == "Roe"


async def test_lock_lost_when_retaking_fails(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    with pytest.raises(LockLost) as lost:
        async with client(ef45_server) as ef45:
            uid = ef45_state.lock_uid
            ef45_state.steal_lock()  # someone else takes the lock mid-session
            await ef45.get_user("a")
    assert uid is not None and uid not in str(lost.value)
    assert "/1.0/subjects/a" in str(lost.value)


async def test_lock_lost_is_recovered_by_stealing_when_allowed(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    async with client(ef45_server, steal_lock=True) as ef45:
        ef45_state.steal_lock()
        assert await ef45.get_user("a") is None
    assert ef45_state.lock_uid is None


class CountingTransport(httpx.AsyncBaseTransport):
    """A real transport that records how many requests were in flight at once."""

    def __init__(self, ca_file: Path | None) -> None:
        self.inner = httpx.AsyncHTTPTransport(verify=ssl_context(ca_file))
        self.active = self.peak = self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.active += 1
        self.sent += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_one_request_at_a_time_and_the_transport_stays_open(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_faults: Faults
) -> None:
    ef45_faults.latency_ms = 20
    transport = CountingTransport(ef45_server.certfile)
    for _ in range(2):  # two sessions share the caller's transport
        async with client(ef45_server, transport=transport) as ef45:
            await asyncio.gather(*(ef45.get_user(f"u{n}") for n in range(5)))
    await transport.aclose()
    # Per session: 4 to open and close, and per absent user its 404 and the lock check.
    assert transport.peak == 1 and transport.sent == 2 * (4 + 5 * 2)


# -- users ---------------------------------------------------------------------------


@both_firmwares
async def test_user_lifecycle(ef45_server: EmulatorServer, ef45_state: Ef45State) -> None:
    faces = [{"sub_id": 0, "face_feature": "f0"}, {"sub_id": 1, "face_feature": "f1"}]
    async with client(ef45_server) as ef45:
        assert await ef45.get_user("a") is None
        await ef45.create_user(subject("a"), {"card": "65 D8 A1 BD", "pin": PIN}, faces)
        user = await ef45.get_user("a")
        assert user == Ef45User(
            subject={**subject("a"), "record_version": 8976},
            user_info={"user_uuid": "a", "card": "65 D8 A1 BD", "pin": PIN},
            faces=tuple({**f, "user_uuid": "a"} for f in faces),
        )
        await ef45.update_user(
            subject("a", access_allowed=False),
            {"user_uuid": "a", "card": "01 02"},
            [{"sub_id": 1, "face_feature": "g1"}, {"sub_id": 3, "face_feature": "f3"}],
        )
        assert ef45_state.subjects["a"]["access_allowed"] is False
        assert ef45_state.user_info["a"]["card"] == "01 02"
        assert ef45_state.faces["a"][1]["face_feature"] == "g1"
        assert sorted(ef45_state.faces["a"]) == [1, 3]
        with pytest.raises(ValueError, match="user_uuid"):
            await ef45.update_user(None, None, [])
        await ef45.update_user(None, {"user_uuid": "a", "pin": "1"}, None)
        assert ef45_state.faces["a"][3]["face_feature"] == "f3"
        with pytest.raises(UserExists):
            await ef45.create_user(subject("a"), {})
        await ef45.delete_user("a")
        assert await ef45.get_user("a") is None
        assert "a" not in ef45_state.subjects and "a" not in ef45_state.user_info
        assert "a" not in ef45_state.faces
        with pytest.raises(UnknownUser):
            await ef45.delete_user("a")
    infos = [e["info"] for e in ef45_state.logs.values()]
    assert infos[0] == "AddUser" and infos[-1] == "DeleteUsers" and "UpdateUser" in infos


@both_firmwares
async def test_update_posts_user_info_the_device_lacks(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    async with client(ef45_server) as ef45:
        await ef45.create_user(subject("a"), {"user_uuid": "a"})
        assert "a" not in ef45_state.user_info
        await ef45.update_user(None, {"user_uuid": "a", "card": "0A"})
        assert ef45_state.user_info["a"] == {"user_uuid": "a", "card": "0A"}
        with pytest.raises(UnknownUser, match="HTTP 404"):
            await ef45.update_user(subject("nobody"), None)


@pytest.mark.parametrize("ef45_firmware", ["old"])
async def test_old_firmware_claiming_a_batch_version_falls_back(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    ef45_state.app_version = "1.3.9"  # claims batch, has no POST /user
    async with client(ef45_server) as ef45:
        assert ef45.uses_batch
        await ef45.create_user(subject("a"), {"card": "01"}, [{"sub_id": 2}])
        assert not ef45.uses_batch
        assert ef45_state.faces["a"][2]["user_uuid"] == "a"
        await ef45.delete_user("a")
    assert ef45_state.subjects == {} and ef45_state.faces == {}


@both_firmwares
async def test_device_full(ef45_server: EmulatorServer, ef45_state: Ef45State) -> None:
    ef45_state.capacity = 1
    async with client(ef45_server) as ef45:
        await ef45.create_user(subject("a"), {})
        with pytest.raises(DeviceFull, match="DB is full"):
            await ef45.create_user(subject("b"), {})
    assert list(ef45_state.subjects) == ["a"]


@both_firmwares
async def test_duplicate_card_is_rejected_and_nothing_is_left(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    async with client(ef45_server) as ef45:
        await ef45.create_user(subject("a"), {"card": "65 D8"})
        with pytest.raises(CardInUse, match="held by another user") as rejected:
            await ef45.create_user(
                subject("b", left_eye_template=TEMPLATE), {"card": "65 D8", "pin": PIN}
            )
        with pytest.raises(Ef45Rejected, match="HTTP 400") as bad:
            await ef45.create_user({"user_uuid": "c", "last_name": ""}, {})
        assert not isinstance(bad.value, CardInUse)
        await ef45.create_user(subject("c"), {"card": "01"})
        with pytest.raises(CardInUse):  # an update too: the device's bare 409
            await ef45.update_user(None, {"user_uuid": "c", "card": "65 D8"})
    message = str(rejected.value)
    assert "HTTP 409" in message and "/1.0/" in message
    assert PIN not in message and TEMPLATE[:40] not in message
    assert list(ef45_state.subjects) == ["a", "c"]  # the separate calls undid subject "b"
    assert ef45_state.user_info["c"]["card"] == "01"


@both_firmwares
async def test_lists_page_over_several_pages(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    for n in range(120):
        ef45_state.add_user_info({"user_uuid": f"u{n:03}", "card": f"{n:02X}"})
        ef45_state.add_subject(subject(f"u{n:03}"))
        ef45_state.add_face({"user_uuid": f"u{n:03}", "sub_id": 0})
    async with client(ef45_server, page_size=50) as ef45:
        subjects = [s["user_uuid"] async for s in ef45.iter_subjects()]
        infos = [i["user_uuid"] async for i in ef45.iter_user_info()]
        faces = [f["user_uuid"] async for f in ef45.iter_faces()]
        logs = [e["id"] async for e in ef45.iter_logs()]
        window = [e["id"] async for e in ef45.iter_logs_between(30, 140)]
        nothing = [e async for e in ef45.iter_logs_between(5000, 6000)]
    expected = [f"u{n:03}" for n in range(120)]
    assert subjects == expected and infos == expected and faces == expected
    assert logs == list(range(1, 241))
    assert window == list(range(30, 141))
    assert nothing == []


@both_firmwares
async def test_find_duplicate(ef45_server: EmulatorServer, ef45_state: Ef45State) -> None:
    ef45_state.add_subject(subject("a", left_eye_template=TEMPLATE, right_eye_template="R"))
    async with client(ef45_server) as ef45:
        assert await ef45.find_duplicate(TEMPLATE, "") == "a"
        assert await ef45.find_duplicate("other", "other") is None


@both_firmwares
async def test_device_calls(ef45_server: EmulatorServer, ef45_state: Ef45State) -> None:
    ef45_state.files["a_lefteye.jpg"] = b"\xff\xd8jpeg"
    ef45_state.door["relay"] = 1
    async with client(ef45_server) as ef45:
        assert await ef45.get_config("launcher.device.door.duration", "int") == 3
        await ef45.put_config("launcher.device.door.duration", "int", 7)
        assert await ef45.get_config("launcher.device.door.duration", "int") == 7
        with pytest.raises(Ef45Rejected, match="HTTP 404"):
            await ef45.get_config("no.such.title", "int")
        await ef45.set_device_time(datetime(2018, 5, 20, 14, 40, 30))
        assert await ef45.door_status() == {"door_sensor": 0, "relay": 1, "tamper": 0, "rte": 0}
        assert await ef45.load_file("a_lefteye.jpg") == b"\xff\xd8jpeg"
        # device: 200 with file "" for a missing file; lenient: 404. Never an empty image.
        with pytest.raises(FileMissing) as missing:
            await ef45.load_file("missing.jpg")
        assert missing.value.status == 404
    assert ef45_state.config["launcher.device.door.duration"] == 7
    assert ef45_state.device_time == datetime(2018, 5, 20, 14, 40, 30)


# -- faults --------------------------------------------------------------------------


async def test_5xx_is_unavailable_and_exit_does_not_mask_it(
    ef45_server: EmulatorServer, ef45_faults: Faults
) -> None:
    with pytest.raises(Ef45Unavailable, match="HTTP 503") as unavailable:
        async with client(ef45_server) as ef45:
            ef45_faults.error_rate = 1.0  # also refuses the DELETE /lock of the exit
            await ef45.get_user("a")
    assert unavailable.value.status == 503
    with pytest.raises(Ef45Unavailable):  # and on entry
        async with client(ef45_server):
            pass


async def test_dropped_connection_is_unavailable(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_faults: Faults
) -> None:
    with pytest.raises(Ef45Unavailable, match="RemoteProtocolError") as dropped:
        async with client(ef45_server) as ef45:
            ef45_faults.drop_rate = 1.0
            await ef45.get_user("a")
    assert "lock_uid" not in str(dropped.value)


async def test_timeout_is_unavailable(ef45_server: EmulatorServer, ef45_faults: Faults) -> None:
    ef45_faults.timeout_s = 0.5
    with pytest.raises(Ef45Unavailable, match=r"no answer within 0\.2 s"):
        async with client(ef45_server, timeout_s=0.2) as ef45:
            ef45_faults.timeout_rate = 1.0
            await ef45.get_user("a")


async def test_connection_refused_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # free: nothing listens there
    with pytest.raises(Ef45Unavailable, match="ConnectError"):
        async with Ef45Client(base_url=url, timeout_s=1.0):
            pass


# -- the emulator's HTTP surface -----------------------------------------------------


@both_firmwares
async def test_emulator_refuses_calls_without_the_lock(
    ef45_server: EmulatorServer, ef45_state: Ef45State, ef45_firmware: str
) -> None:
    verify = ssl_context(ef45_server.certfile)
    async with httpx.AsyncClient(base_url=ef45_server.url + "/1.0", verify=verify) as http:
        refused = await http.get("/subjects")
        assert refused.status_code == 403 and "lock" in refused.json()["message"]
        uid = (await http.post("/lock")).json()["lock_uid"]
        busy = ef45_state.behaviour.lock_busy_status
        assert (await http.post("/lock")).status_code == busy
        batch = await http.post("/user", params={"lock_uid": uid}, json=subject("a"))
        assert batch.status_code == (200 if ef45_firmware == "new" else 404)
        assert (await http.delete("/lock/not-the-uid")).status_code == 404
        assert (await http.delete(f"/lock/{uid}")).status_code == 200
    assert ef45_state.lock_uid is None


@pytest.mark.parametrize("ef45_scheme", ["https"])
async def test_an_untrusted_certificate_is_refused_with_the_key_to_set(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    """Over https, a terminal whose certificate is not trusted is never talked to: the
    error names `ca_file`; no lock is taken."""
    with pytest.raises(Ef45Unavailable, match=r"not trusted.*ca_file"):
        async with client(ef45_server, ca_file=None):
            pass
    assert ef45_state.lock_uid is None


async def test_a_list_past_its_byte_budget_fails_instead_of_filling_memory(
    ef45_server: EmulatorServer, ef45_state: Ef45State
) -> None:
    async with client(ef45_server, page_size=2) as ef45:
        for n in range(6):
            await ef45.create_user(subject(f"u{n}"), {"card": f"0{n}"})
    async with client(ef45_server, page_size=2) as ef45:
        assert len([s async for s in ef45.iter_subjects()]) == 6  # within the default
    async with client(ef45_server, page_size=2, max_list_total_bytes=64 * 1024) as ef45:
        ef45_state.subjects.update(
            {f"big{n}": {"user_uuid": f"big{n}", "last_name": "x" * 20_000} for n in range(6)}
        )
        with pytest.raises(Ef45Unavailable, match=r"passed 65536 bytes in all \(max_list_total"):
            _ = [s async for s in ef45.iter_subjects()]
