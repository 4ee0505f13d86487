"""A hostile CLUe place, through the CLI as a child process, on SQLite and PostgreSQL.

For each way a place can misbehave (`tests.fixtures.hostile_clue`), `syncd apply` ends
with a clear error (exit 8, no traceback) within a bound derived from the configured
limits, its peak RSS stays under RSS_BOUND_MIB, nothing malformed reaches the ledger,
and the next run against the healthy emulator converges with no manual step.

The place is configured tight (`timeout_s` 2, `max_429_wait_s` 2, `max_pages` 20, one
in-run retry) so a bound of seconds is meaningful; the limits themselves are the
defaults (8 MiB bodies, 32 MiB auth list pages).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import ClueState
from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.ledger.schema import cursors, target_records
from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID
from tests.fixtures.clue_env import CLUE_TARGET, ClueEnv, clue_target_lines
from tests.fixtures.hostile_clue import (
    ANY,
    CREATE,
    EVENTS,
    LIST,
    Answer,
    HostileClue,
    Measured,
    auth,
    drip,
    drop_mid_body,
    endless_auth_pages,
    endless_body,
    endless_event_pages,
    gzip_bomb,
    huge_body,
    json_answer,
    never,
    run_measured,
    too_many,
)
from tests.fixtures.syncd_env import SyncdEnv

pytestmark = pytest.mark.slow

TIMEOUT_S = 2.0
MAX_429_WAIT_S = 2.0
MAX_PAGES = 20
RSS_BOUND_MIB = 200.0
"""The child's peak RSS: a healthy apply of this env peaks near 100 MiB; reading a 32 MiB
list page costs a few times that page. A body read whole (3 GiB declared, endless, a
1 GiB gzip bomb) would pass it many times over."""
SLACK_S = 5.0
"""The engine's short backoffs and scheduling noise. Wall time is compared with the
healthy apply that follows (start-up, plan and 40 creates), so a loaded machine slows
both alike: a hostile run may take that long plus what its case's limits allow."""
APPLY = ("apply", "--yes", "--target", "cloud")
AUTH_ID = re.compile(r"^[1-9][0-9]{0,18}$")


@dataclass
class Hostile:
    """A CLUe env whose place is `app` (hostile per `app.rules`) around `clue.state`."""

    clue: ClueEnv
    app: HostileClue

    @property
    def env(self) -> SyncdEnv:
        return self.clue.env


@pytest.fixture
def hostile(syncd_env: SyncdEnv) -> Iterator[Hostile]:
    """`syncd_env` plus the CLUe place `cloud`, served by a HostileClue with no rules yet."""
    state = ClueState(place_id=CLUE_PLACE_ID, api_key=CLUE_API_KEY)
    key_file = syncd_env.workdir / "clue.key"
    key_file.write_text(CLUE_API_KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    app = HostileClue(create_clue_app(state))
    syncd_env.apply_settings = ["retries = 1"]
    with EmulatorServer(app) as server:
        lines = clue_target_lines(server.url, key_file)
        tight = [
            f"timeout_s = {TIMEOUT_S}",
            f"max_429_wait_s = {MAX_429_WAIT_S}",
            f"max_pages = {MAX_PAGES}",
        ]
        lines = [line for line in lines if not line.startswith("timeout_s")]
        clue = ClueEnv(syncd_env, state, server, key_file)
        clue.use_target(*lines[:-1], *tight, "")
        yield Hostile(clue, app)


def assert_clean_failure(run: Measured, message: str) -> None:
    """The run failed on the target (exit 8) with `message`, its memory bounded."""
    assert run.returncode == 8, run.output
    assert message in run.output, run.output
    assert "Traceback" not in run.output, run.output
    assert run.peak_rss_mib < RSS_BOUND_MIB, f"peak RSS {run.peak_rss_mib:.0f} MiB"


def assert_in_time(run: Measured, healthy: Measured, allowed_s: float) -> None:
    """`run` took no longer than the `healthy` one plus `allowed_s` (and SLACK_S)."""
    bound = healthy.elapsed_s + allowed_s + SLACK_S
    assert run.elapsed_s < bound, f"{run.elapsed_s:.1f} s > {bound:.1f} s: {run.output}"


def assert_nothing_malformed(env: SyncdEnv) -> None:
    """Every CLUe remote id stored is an authId; every events cursor epoch ms."""
    engine = sa.create_engine(env.ledger_url)
    try:
        with engine.connect() as conn:
            remote_ids = conn.execute(
                sa.select(target_records.c.remote_id).where(target_records.c.target == CLUE_TARGET)
            ).scalars()
            values = conn.execute(
                sa.select(cursors.c.value).where(cursors.c.name == f"events:{CLUE_TARGET}")
            ).scalars()
            bad = [r for r in remote_ids if r is not None and not AUTH_ID.match(r)]
            bad += [v for v in values if not v.isdigit()]
    finally:
        engine.dispose()
    assert bad == []


def assert_converges(hostile: Hostile) -> Measured:
    """With the place healthy again, one apply brings it in step and a check finds nothing;
    return that apply."""
    hostile.app.rules.clear()
    run = run_measured(hostile.env, *APPLY)
    assert run.returncode == 0, run.output
    held = sorted(a.key for a in hostile.clue.state.auths.values())
    assert held == sorted(r["employee_id"] for r in read_people_csv(hostile.env.csv_path))
    check = hostile.env.run("plan", "--check", "--target", "cloud")
    assert check.returncode == 0, check.stdout + check.stderr
    assert_nothing_malformed(hostile.env)
    return run


# Each case: the rules, a part of the error, and how much longer than a healthy apply the
# run may take. A target-level temporary error costs (retries + 1) sessions of (retries +
# 1) tries each: 4 exchanges.
EXCHANGES = 4
CASES: dict[str, tuple[dict[str, Answer], str, float]] = {
    "endless auth paging": (
        {LIST: endless_auth_pages(total=10**9)},
        f"did not end after {MAX_PAGES} pages",
        0.0,
    ),
    "endless auth paging without total": (
        {LIST: endless_auth_pages(total=None)},
        f"did not end after {MAX_PAGES} pages",
        0.0,
    ),
    "huge declared body": (
        {LIST: huge_body(3 * 1024**3)},
        "answered a body over 33554432 bytes (max_list_body_bytes)",
        0.0,
    ),
    "endless chunked body": (
        {CREATE: endless_body()},
        "answered a body over 8388608 bytes (max_body_bytes)",
        EXCHANGES * TIMEOUT_S,
    ),
    "gzip bomb": (
        {EVENTS: gzip_bomb(1024**3)},
        "answered a body over 8388608 bytes (max_body_bytes)",
        0.0,
    ),
    "429 for ever": (
        {ANY: too_many("1")},
        "rate limited",
        MAX_429_WAIT_S,
    ),
    "no answer": (
        {CREATE: never()},
        f"did not answer in full within timeout_s ({TIMEOUT_S:g} s)",
        EXCHANGES * TIMEOUT_S,
    ),
    "body dripping in": (
        {EVENTS: drip(0.05)},
        f"did not answer in full within timeout_s ({TIMEOUT_S:g} s)",
        EXCHANGES * TIMEOUT_S,
    ),
    "drop mid-body": (
        {LIST: drop_mid_body()},
        "cannot reach CLUe",
        0.0,
    ),
    "create answered with CR/LF in authId": (
        {CREATE: json_answer({"data": auth("7\r\nX-Injected: 1", "E000001")})},
        "authId '7\\r\\nX-Injected: 1' is not a positive integer",
        0.0,
    ),
    "create answered with an authId out of range": (
        {CREATE: json_answer({"data": auth(2**70, "E000001")})},
        "is not a positive integer",
        0.0,
    ),
    "create answered with control characters in user.key": (
        {CREATE: json_answer({"data": auth(5, "E\x00001\r\n")})},
        "holds control characters",
        0.0,
    ),
}


STORING = [case for case in CASES if case.startswith("create answered")]
"""The cases whose hostile value reaches the ledger's write path: both ledgers."""
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
"""The other cases store nothing of the answer: one ledger is enough."""


@SQLITE_ONLY
@pytest.mark.parametrize("case", [case for case in CASES if case not in STORING])
def test_a_hostile_place_fails_cleanly_and_the_next_run_converges(
    hostile: Hostile, case: str
) -> None:
    hostile_case(hostile, case)


@pytest.mark.parametrize("case", STORING)
def test_a_hostile_answer_that_could_be_stored_never_is(hostile: Hostile, case: str) -> None:
    hostile_case(hostile, case)


def hostile_case(hostile: Hostile, case: str) -> None:
    """Apply against the hostile answer of `case`; a clean failure, then convergence."""
    rules, message, allowed_s = CASES[case]
    hostile.app.rules.update(rules)
    run = run_measured(hostile.env, *APPLY)
    assert_clean_failure(run, message)
    assert sum(hostile.app.hits.values()) > 0  # the hostile answer was given
    assert_nothing_malformed(hostile.env)
    assert_in_time(run, assert_converges(hostile), allowed_s)


@SQLITE_ONLY
def test_429_for_ever_costs_one_deadline_not_one_per_action(hostile: Hostile) -> None:
    hostile.app.rules[ANY] = too_many("1")
    run = run_measured(hostile.env, *APPLY)
    assert_clean_failure(run, "rate limited")
    # One request rode out its 2 s (tries at 0, 1 and 2 s); every later one, of 40
    # creates and a reopened session, was refused without being sent.
    assert hostile.app.hits[ANY] <= 6, hostile.app.hits  # 3, or 6 on a machine so slow the
    # reopened session came after the place's 2 s cool-off
    assert_in_time(run, assert_converges(hostile), MAX_429_WAIT_S)


@SQLITE_ONLY
def test_listed_auths_with_malformed_ids_are_skipped_with_a_warning(hostile: Hostile) -> None:
    listed = [
        auth(1, "x\r\nX-Injected: 1"),
        auth("2\r\n", "E000001"),
        auth(-3, "E000002"),
        auth(True, "E000003"),
        auth(4, "k" * 300),
    ]
    hostile.app.rules[LIST] = json_answer({"total": len(listed), "data": listed})
    run = run_measured(hostile.env, *APPLY)
    # None of the skipped auths is anyone's: every person is created, nothing stored of them.
    assert run.returncode == 0, run.output
    assert "an auth skipped: user.key 'x\\r\\nX-Injected: 1'" in run.output
    assert "an auth skipped: authId '2\\r\\n' is not a positive integer" in run.output
    assert "Traceback" not in run.output
    assert_nothing_malformed(hostile.env)
    assert_converges(hostile)


def test_a_malformed_stored_remote_id_is_discarded_and_the_update_converges(
    hostile: Hostile,
) -> None:
    assert run_measured(hostile.env, *APPLY).returncode == 0
    rows = read_people_csv(hostile.env.csv_path)
    key = rows[0]["employee_id"]
    engine = sa.create_engine(hostile.env.ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                target_records.update()
                .where(target_records.c.target == CLUE_TARGET, target_records.c.person_key == key)
                .values(remote_id="1\r\nX-Injected: 1")
            )
    finally:
        engine.dispose()
    rows[0]["last_name"] = "Renamed"
    write_people_csv(hostile.env.csv_path, rows)
    run = run_measured(hostile.env, *APPLY)
    assert run.returncode == 0, run.output
    assert "stored CLUe remote id '1\\r\\nX-Injected: 1' is not an authId" in run.output
    [held] = hostile.clue.state.auths_by_key(key)
    assert held.name.endswith("Renamed")
    assert_converges(hostile)


def test_events_endless_paging_and_a_malformed_cursor(hostile: Hostile) -> None:
    hostile.app.rules[EVENTS] = endless_event_pages()
    run = run_measured(hostile.env, "events", "collect")
    assert run.returncode != 0, run.output
    assert f"the events query did not end after {MAX_PAGES} pages" in run.output
    assert "Traceback" not in run.output
    assert run.peak_rss_mib < RSS_BOUND_MIB
    assert_nothing_malformed(hostile.env)
    # A cursor stored by hand (or by an older syncd) that is not epoch ms is discarded.
    engine = sa.create_engine(hostile.env.ledger_url)
    try:
        with engine.begin() as conn:
            conn.execute(cursors.delete().where(cursors.c.name == f"events:{CLUE_TARGET}"))
            conn.execute(
                cursors.insert().values(
                    name=f"events:{CLUE_TARGET}", value="12\r\nX", updated_at=datetime.now(UTC)
                )
            )
    finally:
        engine.dispose()
    hostile.app.rules.clear()
    hostile.clue.state.add_access_event("DEV_DOOR_RELAY_ON", at_ms=int(time.time() * 1000))
    collected = run_measured(hostile.env, "events", "collect")
    assert collected.returncode == 0, collected.output
    assert "stored events cursor '12\\r\\nX' is not epoch ms" in collected.output
    assert_nothing_malformed(hostile.env)  # the cursor moved to the event's eventAt
