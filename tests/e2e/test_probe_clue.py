"""`syncd probe` of a CLUe place as a real process, against each plausible service.

The place refuses a duplicate `user.key` (409 or 400) or accepts it; serves auths at the
newer (`/v1`) or the older (`/v1/be`) layout. Every assumption holds where the config
matches the service; a layout mismatch exits 10 naming the `api_base` to set and writes
nothing; no probe auth ever stays behind, and people's auths are never touched.
"""

from __future__ import annotations

import json

import pytest

from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import ClueState
from syncd.emulators.server import EmulatorServer
from syncd.targets.clue.probe import PROBE_KEY, probe_body
from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID
from tests.fixtures.clue_env import CLUE_TARGET, ClueEnv, clue_target_lines


def _probe(clue_env: ClueEnv) -> tuple[int, dict[str, object]]:
    done = clue_env.env.run("probe", CLUE_TARGET, "--format", "json")
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    assert done.returncode in (0, 10), done.stderr
    return done.returncode, report


def _finding(report: dict[str, object], starts: str) -> dict[str, object]:
    findings = report["findings"]
    assert isinstance(findings, list)
    matches = [f for f in findings if str(f["assumption"]).startswith(starts)]
    assert matches, f"no finding {starts!r}"
    return dict(matches[0])


def _seed_person(state: ClueState) -> int:
    """Store one person's auth the probe must leave alone; return its id."""
    body = probe_body("Ada")
    body["user"]["key"] = "E000001"
    body["auth"]["activeStatus"] = "ACTIVE"
    return int(state.create_auth(body)["authId"])


@pytest.mark.parametrize("duplicates", ["refuse", "refuse-400", "accept"])
def test_every_assumption_holds_whatever_clue_does_with_duplicate_keys(
    syncd_clue_env: ClueEnv, duplicates: str
) -> None:
    state = syncd_clue_env.state
    state.duplicate_keys = duplicates
    person = _seed_person(state)
    code, report = _probe(syncd_clue_env)
    assert code == 0, report
    duplicate = str(_finding(report, "a second auth with the same user.key")["observed"])
    assert duplicate.startswith("accepted" if duplicates == "accept" else "refused")
    assert _finding(report, "a new auth shows in the list at once")["holds"] is True
    assert state.auths_by_key(PROBE_KEY) == []
    assert list(state.auths) == [person]


def test_a_leftover_probe_auth_is_removed(syncd_clue_env: ClueEnv) -> None:
    state = syncd_clue_env.state
    state.create_auth(probe_body("old"))
    code, _ = _probe(syncd_clue_env)
    assert code == 0
    assert state.auths_by_key(PROBE_KEY) == []


def test_the_other_layout_is_named_and_nothing_is_written(syncd_clue_env: ClueEnv) -> None:
    clue_env = syncd_clue_env
    older = ClueState(place_id=CLUE_PLACE_ID, api_key=CLUE_API_KEY, api_base="/v1/be")
    with EmulatorServer(create_clue_app(older)) as server:  # serves the older layout only
        clue_env.use_target(*clue_target_lines(server.url, clue_env.key_file))
        code, report = _probe(clue_env)
    assert code == 10
    listed = _finding(report, "the auth list answers")
    assert listed["holds"] is False
    assert listed["config"] == 'api_base = "/v1/be"'
    assert older.auths == {}
