"""No retry ever makes a second CLUe auth, whatever CLUe does with a duplicate user.key.

ClueTarget sessions against the CLUe emulator over loopback, in each duplicate-key
profile ("refuse": 409, "refuse-400": 400 "already exists", "accept": a second auth is
made), with the answer of a create that CLUe carried out lost (connection dropped, or a
bare 503): the create is retried in the same session (the engine's in-run retry) and in
a new one (a later run, or the run after a crash), and the place still holds one auth.
"""

from __future__ import annotations

import pytest

from syncd.emulators.clue_state import DUPLICATE_KEY_PROFILES, ClueState
from syncd.emulators.server import EmulatorServer
from syncd.model import Op, Status
from syncd.targets.clue.client import (
    AuthListUnavailable,
    ClueUnavailable,
    DuplicateAuths,
)
from syncd.targets.clue.target import ClueTarget, auth_body
from tests.fixtures.clue import CLUE_API_KEY, stale_record
from tests.integration.test_clue_target import action, make_target

LOST = ("drop", "503")


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CLUE_TEST_KEY", CLUE_API_KEY)
    return "CLUE_TEST_KEY"


@pytest.fixture(params=DUPLICATE_KEY_PROFILES)
def profile(request: pytest.FixtureRequest, clue_state: ClueState) -> str:
    """Each duplicate-key profile of the emulator in turn."""
    clue_state.duplicate_keys = request.param
    return str(request.param)


async def test_the_accept_profile_really_duplicates(
    clue_server: EmulatorServer, clue_state: ClueState
) -> None:
    # The hazard the session guards against: a blind second create makes a second auth.
    clue_state.duplicate_keys = "accept"
    body = await auth_body(stale_record("E1"), None)
    clue_state.create_auth(body)
    clue_state.create_auth(body)
    assert len(clue_state.auths_by_key("E1")) == 2


@pytest.mark.parametrize("how", LOST)
async def test_a_create_retried_in_the_session_finds_the_first(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str, profile: str, how: str
) -> None:
    clue = make_target(clue_server.url, key_env)
    create = action(clue, "E1", Op.CREATE)
    async with clue.session() as session:
        await session.apply(action(clue, "E0", Op.CREATE))  # the list is read and kept
        clue_state.lose_answers(1, method="POST", how=how)
        with pytest.raises(ClueUnavailable):
            await session.apply(create)
        assert len(clue_state.auths_by_key("E1")) == 1  # CLUe carried it out
        again = await session.apply(create)
    held = clue_state.auths_by_key("E1")
    assert [str(a.auth_id) for a in held] == [again]
    assert held[0].name == "Ada E1"


@pytest.mark.parametrize("how", LOST)
async def test_a_create_retried_on_a_later_run_finds_the_first(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str, profile: str, how: str
) -> None:
    clue = make_target(clue_server.url, key_env)
    clue_state.lose_answers(1, method="POST", how=how)
    async with clue.session() as session:
        with pytest.raises(ClueUnavailable):
            await session.apply(action(clue, "E1", Op.CREATE))
    async with clue.session() as session:
        again = await session.apply(action(clue, "E1", Op.CREATE, first_name="Eve"))
    held = clue_state.auths_by_key("E1")
    assert [str(a.auth_id) for a in held] == [again]
    assert held[0].name == "Eve E1"


async def test_a_create_after_a_crash_updates_what_cloud_holds(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str, profile: str
) -> None:
    # CLUe took the create, syncd died before its ledger commit: the ledger has no
    # remote id, the next run plans a create again.
    first = clue_state.create_auth(await auth_body(stale_record("E1"), None))["authId"]
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        assert await session.apply(action(clue, "E1", Op.CREATE)) == str(first)
        # And an update without a remote id (ledger lost it) goes to the same auth.
        assert await session.apply(action(clue, "E1", Op.UPDATE)) == str(first)
    assert [a.auth_id for a in clue_state.auths_by_key("E1")] == [first]
    assert clue_state.auths[first].name == "Ada E1"


async def test_an_auth_made_in_the_console_mid_session_is_not_duplicated(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    # The session's copy of the list predates the console's create: a refusing CLUe
    # answers 409, and the session reads the list again instead of failing.
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        await session.apply(action(clue, "E0", Op.CREATE))
        console = clue_state.create_auth(await auth_body(stale_record("E1"), None))["authId"]
        assert await session.apply(action(clue, "E1", Op.CREATE)) == str(console)
    assert [a.auth_id for a in clue_state.auths_by_key("E1")] == [console]


async def test_two_auths_with_one_key_are_reported_not_guessed(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    clue_state.duplicate_keys = "accept"
    body = await auth_body(stale_record("E1"), None)
    ids = {clue_state.create_auth(body)["authId"] for _ in range(2)}
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        with pytest.raises(DuplicateAuths, match="2 auths") as caught:
            await session.apply(action(clue, "E1", Op.CREATE))
        assert not caught.value.target_level  # this person's problem only
        assert await session.apply(action(clue, "E2", Op.CREATE)) is not None
    assert {a.auth_id for a in clue_state.auths_by_key("E1")} == ids
    assert all(a.name == "Before Crash" for a in clue_state.auths_by_key("E1"))


async def test_without_the_auths_list_no_create_is_sent(
    clue_state: ClueState, key_env: str
) -> None:
    from syncd.emulators.clue import create_clue_app

    clue_state.api_base = "/v1/be"  # the older layout; the target keeps the default "/v1"
    with EmulatorServer(create_clue_app(clue_state)) as server:
        clue = make_target(server.url, key_env)
        async with clue.session() as session:
            with pytest.raises(AuthListUnavailable, match="api_base") as caught:
                await session.apply(action(clue, "E1", Op.CREATE))
            assert caught.value.target_level
            with pytest.raises(AuthListUnavailable):  # the session stops calling CLUe
                await session.apply(action(clue, "E2", Op.CREATE))
    assert clue_state.writes() == []


@pytest.mark.parametrize("api_base", ["/v1", "/v1/be"])
async def test_each_layout_works_with_its_api_base(
    clue_state: ClueState, key_env: str, api_base: str
) -> None:
    from syncd.emulators.clue import create_clue_app

    clue_state.api_base = api_base
    with EmulatorServer(create_clue_app(clue_state)) as server:
        clue: ClueTarget = make_target(server.url, key_env, api_base=api_base)
        async with clue.session() as session:
            auth_id = await session.apply(action(clue, "E1", Op.CREATE))
            renamed = action(clue, "E1", Op.UPDATE, remote_id=auth_id, first_name="Eve")
            assert await session.apply(renamed) == auth_id
            await session.apply(action(clue, "E1", Op.DELETE, remote_id=auth_id))
    paths = {r.path.rsplit("/auths", 1)[0] for r in clue_state.writes()}
    assert paths == {f"{api_base}/places/{clue_state.place_id}"}
    assert clue_state.auths == {}


async def _two_auths_of_e1(clue_state: ClueState) -> tuple[int, int]:
    """Store two auths with the key E1 (a CLUe that accepts duplicates); return their ids."""
    clue_state.duplicate_keys = "accept"
    body = await auth_body(stale_record("E1"), None)
    known, other = (int(clue_state.create_auth(body)["authId"]) for _ in range(2))
    return known, other


async def test_a_leaver_is_closed_on_every_auth_with_their_key(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    # Two auths with one key (made before syncd looked keys up, or by hand): the ledger
    # knows one. Disabling the leaver must close the other too, and deleting must
    # remove both: a door system fails closed.
    known, other = await _two_auths_of_e1(clue_state)
    clue = make_target(clue_server.url, key_env)
    leaver = action(clue, "E1", Op.DISABLE, remote_id=str(known), status=Status.DISABLED)
    async with clue.session() as session:
        assert await session.apply(leaver) == str(known)
    assert {clue_state.auths[i].auth["activeStatus"] for i in (known, other)} == {"INACTIVE"}
    async with clue.session() as session:
        await session.apply(action(clue, "E1", Op.DELETE, remote_id=str(known)))
    assert clue_state.auths_by_key("E1") == []


async def test_an_active_update_leaves_a_duplicate_alone(
    clue_server: EmulatorServer, clue_state: ClueState, key_env: str
) -> None:
    # Only closing spreads to duplicates: an update that grants access goes to the
    # auth the ledger knows, never to one syncd did not make.
    known, other = await _two_auths_of_e1(clue_state)
    clue = make_target(clue_server.url, key_env)
    async with clue.session() as session:
        renamed = action(clue, "E1", Op.UPDATE, remote_id=str(known), first_name="Eve")
        assert await session.apply(renamed) == str(known)
    assert clue_state.auths[known].name == "Eve E1"
    assert clue_state.auths[other].name == "Before Crash"
