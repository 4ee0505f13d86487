"""ClueTarget sessions against the CLUe emulator over loopback: apply each op, recover."""

from __future__ import annotations

import time
from typing import Any

import pytest

from syncd.config import ClueTargetConfig, SecretRef
from syncd.emulators.clue_state import ClueState
from syncd.emulators.server import EmulatorServer
from syncd.model import Action, Op, Person, Status, digest
from syncd.targets.clue.client import ClueKeyRefused, UnknownAuth
from syncd.targets.clue.target import ClueTarget
from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CLUE_TEST_KEY", CLUE_API_KEY)
    return "CLUE_TEST_KEY"


def make_target(url: str, env: str, **settings: Any) -> ClueTarget:
    values: dict[str, Any] = {"min_interval_ms": 0, "timeout_s": 5}
    config = ClueTargetConfig(
        type="clue",
        url=url,
        place_id=CLUE_PLACE_ID,
        api_key=SecretRef(env=env),
        **(values | settings),
    )
    return ClueTarget("cloud", config)


def action(
    clue: ClueTarget, key: str, op: Op, *, remote_id: str | None = None, **fields: Any
) -> Action:
    values: dict[str, Any] = {"first_name": "Ada", "last_name": key}
    person = Person(key=key, **(values | fields))
    record = clue.render(person, ())
    return Action("cloud", key, op, record, digest(record), remote_id=remote_id)


async def test_create_update_disable_delete(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        auth_id = await session.apply(action(clue, "E1", Op.CREATE))
        assert auth_id is not None and clue_state.auths[int(auth_id)].key == "E1"
        renamed = action(clue, "E1", Op.UPDATE, remote_id=auth_id, first_name="Eve")
        assert await session.apply(renamed) == auth_id
        assert clue_state.auths[int(auth_id)].name == "Eve E1"
        disabled = action(clue, "E1", Op.DISABLE, remote_id=auth_id, status=Status.DISABLED)
        await session.apply(disabled)
        assert clue_state.auths[int(auth_id)].auth["activeStatus"] == "INACTIVE"
        await session.apply(action(clue, "E1", Op.DELETE, remote_id=auth_id))
    assert clue_state.auths == {}


async def test_update_without_remote_id_or_after_manual_removal(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        first = await session.apply(action(clue, "E1", Op.CREATE))
        # The ledger lost the remote id: the auth is found by key, not duplicated.
        assert await session.apply(action(clue, "E1", Op.UPDATE)) == first
        clue_state.delete_auth(int(str(first)))  # removed by hand in the CLUe console
        again = await session.apply(action(clue, "E1", Op.UPDATE, remote_id=first))
    assert again != first
    assert [a.key for a in clue_state.auths.values()] == ["E1"]


async def test_delete_of_an_absent_auth_is_done_only_when_confirmed(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        assert await session.apply(action(clue, "E9", Op.DELETE, remote_id="4242")) == "4242"
        assert await session.apply(action(clue, "E9", Op.DELETE)) is None


async def test_a_wrong_item_path_never_reads_as_deleted(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    good = make_target(clue_server.url, key_env)
    async with good.session() as session:
        auth_id = await session.apply(action(good, "E1", Op.CREATE))
    wrong = make_target(
        clue_server.url, key_env, auth_item_path="/v1/places/{place_id}/auth/{auth_id}"
    )
    async with wrong.session() as session:
        with pytest.raises(UnknownAuth):
            await session.apply(action(wrong, "E1", Op.DELETE, remote_id=auth_id))
        with pytest.raises(UnknownAuth):
            await session.apply(action(wrong, "E1", Op.UPDATE, remote_id=auth_id))
    assert "E1" in {a.key for a in clue_state.auths.values()}


async def test_refused_key_fails_the_session_at_once(
    clue_server: EmulatorServer, clue_state: ClueState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLUE_BAD_KEY", "wrong")
    clue = make_target(clue_server.url, "CLUE_BAD_KEY")
    with pytest.raises(ClueKeyRefused) as caught:
        async with clue.session():
            pass
    assert "wrong" not in str(caught.value)
    assert clue_state.writes() == []


async def test_fifty_creates_are_paced(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    interval_ms = 20
    clue = make_target(clue_server.url, key_env, min_interval_ms=interval_ms)
    async with clue.session() as session:
        began = time.monotonic()
        for index in range(50):
            await session.apply(action(clue, f"E{index:03d}", Op.CREATE))
        elapsed = time.monotonic() - began
    assert elapsed >= 49 * interval_ms / 1000
    assert len(clue_state.auths) == 50
    writes = clue_state.writes()
    # Arrival times jitter around send times by less than one interval.
    assert writes[-1].at - writes[0].at >= 48 * interval_ms / 1000
