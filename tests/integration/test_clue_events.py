"""CLUe events read with an overlap and stored once by logId, on SQLite and PostgreSQL.

A device that was offline uploads its events late, stamped with their own, earlier
times: an event older than the collect cursor must still be collected while it is within
`events_overlap_s`, and reading the overlap again must store nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.config import ClueTargetConfig, SecretRef
from syncd.emulators.clue_state import ClueState
from syncd.emulators.server import EmulatorServer
from syncd.engine.events import collect_from, cursor_name
from syncd.ledger.events import list_events
from syncd.ledger.store import Ledger
from syncd.targets.clue.target import ClueTarget, epoch_ms
from tests.fixtures.clue import CLUE_API_KEY, CLUE_PLACE_ID

MINUTE_MS = 60_000
NOW = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
NOW_MS = epoch_ms(NOW)


def target(url: str, monkeypatch: pytest.MonkeyPatch, **settings: int) -> ClueTarget:
    monkeypatch.setenv("CLUE_TEST_KEY", CLUE_API_KEY)
    config = ClueTargetConfig(
        type="clue",
        url=url,
        place_id=CLUE_PLACE_ID,
        api_key=SecretRef(env="CLUE_TEST_KEY"),
        min_interval_ms=0,
        **settings,
    )
    return ClueTarget("cloud", config)


def collect(ledger: Ledger, clue: ClueTarget) -> tuple[int, int, str | None]:
    report = collect_from(ledger, {"cloud": clue}, lambda: NOW)
    (result,) = report.results
    assert result.error is None, result.error
    return result.read, result.stored, result.cursor


def stored_ids(ledger: Ledger) -> list[str]:
    return sorted(e.remote_id for e in list_events(ledger.db, target="cloud", limit=1000))


def test_a_late_upload_before_the_cursor_is_collected_once(
    ledger: Ledger,
    clue_server: EmulatorServer,
    clue_state: ClueState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clue = target(clue_server.url, monkeypatch)  # default overlap: one hour
    on_time = clue_state.add_access_event("DEV_FACE_AUTH_SUCCESS", at_ms=NOW_MS - 5 * MINUTE_MS)
    assert collect(ledger, clue) == (1, 1, str(NOW_MS - 5 * MINUTE_MS))

    # An offline device comes back and uploads what happened 40 minutes ago; another
    # event, two hours old, comes later than any overlap of an hour can wait for.
    late = clue_state.add_access_event("DEV_FACE_AUTH_FAIL", at_ms=NOW_MS - 40 * MINUTE_MS)
    clue_state.add_access_event("DEV_FACE_AUTH_FAIL", at_ms=NOW_MS - 120 * MINUTE_MS)
    read, stored, cursor = collect(ledger, clue)
    assert (read, stored) == (2, 1)  # the on-time one is read again, stored once
    assert cursor == str(NOW_MS - 5 * MINUTE_MS)  # the late event does not move it back
    assert stored_ids(ledger) == sorted([on_time["logId"], late["logId"]])

    # Reading the same overlap again stores nothing.
    assert collect(ledger, clue)[:2] == (2, 0)
    assert len(stored_ids(ledger)) == 2
    assert ledger.get_cursor(cursor_name("cloud")) == cursor


def test_the_overlap_is_configurable(
    ledger: Ledger,
    clue_server: EmulatorServer,
    clue_state: ClueState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clue = target(clue_server.url, monkeypatch, events_overlap_s=3 * 3600)
    clue_state.add_access_event("DEV_FACE_AUTH_SUCCESS", at_ms=NOW_MS - MINUTE_MS)
    collect(ledger, clue)
    clue_state.add_access_event("DEV_FACE_AUTH_FAIL", at_ms=NOW_MS - 120 * MINUTE_MS)
    assert collect(ledger, clue)[:2] == (2, 1)
    assert len(stored_ids(ledger)) == 2


def test_where_a_read_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    clue = target("http://127.0.0.1:9", monkeypatch, events_overlap_s=600)
    day_ms = 24 * 3600 * 1000
    assert clue.events_read_from(None, NOW_MS) == NOW_MS - 7 * day_ms
    assert clue.events_read_from(NOW_MS - 1000, NOW_MS) == NOW_MS - 1000 - 600_000
    # A cursor from a clock ahead of ours is taken as now: nothing before it is skipped.
    assert clue.events_read_from(NOW_MS + day_ms, NOW_MS) == NOW_MS - 600_000
    assert clue.events_read_from(1000, NOW_MS) == 0


def test_overlap_default_is_an_hour() -> None:
    config = ClueTargetConfig(type="clue", place_id=1, api_key=SecretRef(env="X"))
    assert config.events_overlap_s == 3600
