"""The fault matrix: with each emulator fault switched on, repeated applies converge.

For every fault and both firmware generations (new: batch `POST /user`; old: separate
calls), `Syncer.apply` is run in-process against real HTTP on loopback until a plan is in
step. Then the terminal holds exactly the HR people (DB full: those that fit, the rest
failed permanently and reported), no terminal is left locked, and every ok ledger record
is what the terminal holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.faults import Faults
from syncd.emulators.hr_sample import employee_id
from syncd.engine.apply import ApplyResult
from syncd.engine.run import ApplyOptions
from tests.fixtures.ef45 import EF45_FIRMWARES
from tests.fixtures.ef45_sync import (
    Ef45Site,
    SiteSpec,
    assert_ledger_matches_terminals,
    ledger_rows,
    open_site,
)

PEOPLE = 30
MAX_RUNS = 12
Setup = Callable[[Ef45State, Faults], None]


def _latency(state: Ef45State, faults: Faults) -> None:
    faults.latency_ms = 15


def _errors(state: Ef45State, faults: Faults) -> None:
    faults.error_rate = 0.2


def _timeouts(state: Ef45State, faults: Faults) -> None:
    # The device still handles a request whose answer the client gave up on: a create
    # that "timed out" may have landed. Lock requests are exempt: a POST /lock that lands
    # after the client gave up leaves a lock only a steal (or the real device's expiry,
    # unverified) clears; that case is `test_lock_left_by_a_lost_session_needs_a_steal`.
    faults.timeout_rate = 0.1
    faults.timeout_s = 0.4
    faults.exempt_paths = ("/1.0/lock",)


def _drops(state: Ef45State, faults: Faults) -> None:
    faults.drop_rate = 0.15


def _lock_dropped(state: Ef45State, faults: Faults) -> None:
    state.drop_lock_after = 7


FAULTS: dict[str, Setup] = {
    "latency": _latency,
    "5xx": _errors,
    "timeouts": _timeouts,
    "dropped-connections": _drops,
    "lock-dropped-mid-session": _lock_dropped,
}


@pytest.fixture(params=EF45_FIRMWARES)
def firmware(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def converge(site: Ef45Site, runs: int = MAX_RUNS) -> list[ApplyResult]:
    """Apply until a fresh plan is in step (or `runs` applies); return each run's result."""
    results = []
    engine = site.engine()
    try:
        for _ in range(runs):
            _, result, _ = engine.apply(ApplyOptions(trigger="test"))
            results.append(result)
            if engine.plan(engine.read()).in_step:
                break
    finally:
        engine.close()
    return results


def assert_in_step_with_hr(site: Ef45Site, expected: int = PEOPLE) -> None:
    wanted = {employee_id(i) for i in range(1, PEOPLE + 1)}
    for name, state in site.states.items():
        assert state.lock_uid is None, f"{name} left locked"
        assert set(state.subjects) <= wanted
        assert len(state.subjects) == expected, name
    assert_ledger_matches_terminals(site)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_apply_converges_under_fault(
    tmp_path: Path, stack: ExitStack, firmware: str, fault: str
) -> None:
    # A short client timeout only where timeouts are the fault: elsewhere a loaded
    # machine must not turn slow answers into extra faults.
    timeout = 0.2 if fault == "timeouts" else 2.0
    spec = SiteSpec({"door": firmware}, {"door": {"timeout_s": timeout}})
    site = open_site(tmp_path, spec, stack)
    FAULTS[fault](site.states["door"], site.faults["door"])
    results = converge(site)
    site.faults["door"].error_rate = site.faults["door"].drop_rate = 0.0
    site.faults["door"].timeout_rate = 0.0
    assert_in_step_with_hr(site)
    assert all(r.state == "ok" for r in ledger_rows(site))
    assert sum(r.count("applied") for r in results) >= PEOPLE


def test_lock_held_by_another_client_then_released(
    tmp_path: Path, stack: ExitStack, firmware: str
) -> None:
    site = open_site(tmp_path, SiteSpec({"door": firmware}), stack)
    state = site.states["door"]
    state.lock_held_by_other = True
    blocked = converge(site, runs=2)
    assert all(r.count("applied") == 0 and r.count("failed") == PEOPLE for r in blocked)
    assert "held by another client" in blocked[0].errors["door"]
    assert not state.subjects
    rows = ledger_rows(site)
    assert len(rows) == PEOPLE and all(r.state == "failed" for r in rows)
    assert all("LockBusy" in r.last_error for r in rows)
    state.lock_held_by_other = False  # the vendor software let go
    converge(site)
    assert_in_step_with_hr(site)


def test_lock_held_by_another_client_is_stolen_when_allowed(
    tmp_path: Path, stack: ExitStack, firmware: str
) -> None:
    site = open_site(tmp_path, SiteSpec({"door": firmware}, {"door": {"steal_lock": True}}), stack)
    site.states["door"].lock_held_by_other = True
    results = converge(site)
    assert len(results) == 1
    assert_in_step_with_hr(site)


def test_lock_left_by_a_lost_session_needs_a_steal(tmp_path: Path, stack: ExitStack) -> None:
    site = open_site(tmp_path, SiteSpec({"door": "new"}), stack)
    ghost = site.states["door"].acquire_lock()  # a session that died holding the lock
    assert converge(site, runs=1)[0].count("failed") == PEOPLE
    assert site.states["door"].lock_uid == ghost
    site.target_options["door"] = {"steal_lock": True}
    site.write_config()
    converge(site)
    assert_in_step_with_hr(site)


def test_db_full_applies_what_fits_and_reports_the_rest(
    tmp_path: Path, stack: ExitStack, firmware: str
) -> None:
    site = open_site(tmp_path, SiteSpec({"door": firmware}, capacity=20), stack)
    results = converge(site, runs=3)
    assert results[0].count("applied") == 20 and results[0].count("failed") == 10
    assert all(r.count("applied") == 0 and r.count("failed") == 10 for r in results[1:])
    assert_in_step_with_hr(site, expected=20)
    failed = [r for r in ledger_rows(site) if r.state == "failed"]
    assert len(failed) == 10
    assert all("DeviceFull" in r.last_error and "DB is full" in r.last_error for r in failed)


def test_terminals_fail_independently(tmp_path: Path, stack: ExitStack) -> None:
    spec = SiteSpec({"new": "new", "old": "old", "flaky": "new"}, {"flaky": {"timeout_s": 0.3}})
    site = open_site(tmp_path, spec, stack)
    site.faults["flaky"].error_rate = 0.2
    site.faults["flaky"].drop_rate = 0.05
    converge(site)
    site.faults["flaky"].error_rate = site.faults["flaky"].drop_rate = 0.0
    assert_in_step_with_hr(site)
