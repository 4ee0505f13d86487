"""Drift repair: users deleted or altered on a terminal by hand, orphans, the device clock.

Real HTTP on loopback against emulated terminals of both firmware generations; the CLI
runs as a subprocess (`syncd plan --deep`, `syncd apply --deep`, `syncd device-clock`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import employee_id, sample_rows, write_people_csv
from syncd.engine.clock import set_device_clocks
from syncd.engine.run import ApplyOptions
from syncd.ledger.findings import open_findings
from syncd.ledger.health import load_health
from syncd.ledger.schema import findings, runs
from syncd.ledger.store import create_ledger_engine
from syncd.model import Op
from tests.fixtures.ef45_sync import (
    Ef45Site,
    SiteSpec,
    assert_ledger_matches_terminals,
    open_site,
)

GONE, ALTERED, CARD, ORPHAN = employee_id(1), employee_id(2), employee_id(3), "ORPHAN-0001"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Ef45Site]:
    spec = SiteSpec({"lobby": "new", "lab": "old"}, people=12)
    with ExitStack() as stack:
        built = open_site(tmp_path, spec, stack)
        engine = built.engine()
        try:
            engine.apply(ApplyOptions(trigger="test"))
        finally:
            engine.close()
        yield built


def in_step(site: Ef45Site, *, deep: bool) -> bool:
    """Whether a (deep) plan made in-process has nothing to do."""
    engine = site.engine()
    try:
        return engine.plan(engine.read(), deep=deep).in_step
    finally:
        engine.close()


def tamper(site: Ef45Site) -> None:
    """Change both terminals by hand: one user deleted, two altered, one orphan added."""
    for state in site.states.values():
        with state.mutex:
            state.subjects.pop(GONE)
            state.user_info.pop(GONE, None)
            state.subjects[ALTERED] = {**state.subjects[ALTERED], "first_name": "Mallory"}
            state.user_info[CARD] = {**state.user_info[CARD], "card": "de ad be ef"}
        state.add_user({"user_uuid": ORPHAN, "last_name": "Visitor", "card": "01 02"})


def test_deep_plan_shows_the_repairs_and_deep_apply_restores(site: Ef45Site) -> None:
    tamper(site)
    assert in_step(site, deep=False)  # the ledger alone sees nothing
    shown = site.run_cli("plan", "--deep", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    for target in ("lobby", "lab"):
        ops = {(a["op"], a["person"]) for a in document["targets"][target]}
        assert ops == {("create", GONE), ("update", ALTERED), ("update", CARD)}
    changes = {a["person"]: a["changes"] for a in document["targets"]["lobby"]}
    assert changes[ALTERED]["first_name"][0] == "Mallory"
    assert changes[CARD]["card"][0] == "DE AD BE EF"
    assert any("orphan" in n and ORPHAN in n and "reported only" in n for n in document["notes"])
    assert site.run_cli("plan", "--deep", "--check").returncode == 1

    applied = site.run_cli("apply", "--deep", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert in_step(site, deep=True)
    assert_ledger_matches_terminals(site)
    for state in site.states.values():
        assert GONE in state.subjects and state.subjects[ALTERED]["first_name"] != "Mallory"
        assert ORPHAN in state.subjects  # reported, not deleted (orphans = "report")
        assert state.lock_uid is None
    db = create_ledger_engine(site.ledger_url)
    try:
        found = {(f.target, f.subject) for f in open_findings(db, "orphan")}
    finally:
        db.dispose()
    assert found == {("lobby", ORPHAN), ("lab", ORPHAN)}


def test_orphans_deleted_where_configured_and_findings_resolved(site: Ef45Site) -> None:
    tamper(site)
    site.target_options["lobby"] = {"orphans": "delete"}
    site.write_config()
    applied = site.run_cli("apply", "--deep", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert ORPHAN not in site.states["lobby"].subjects
    assert ORPHAN in site.states["lab"].subjects  # lab reports only
    engine = site.engine()
    try:
        engine.apply(ApplyOptions(trigger="test", deep=True))
    finally:
        engine.close()
    db = create_ledger_engine(site.ledger_url)
    try:
        with db.connect() as conn:
            rows = {r.target: r for r in conn.execute(sa.select(findings))}
    finally:
        db.dispose()
    assert rows["lobby"].resolved_at is not None and rows["lab"].resolved_at is None
    assert_ledger_matches_terminals(site)


def test_orphan_deletes_go_through_the_caps(site: Ef45Site) -> None:
    for index in range(3):
        site.states["lobby"].add_user({"user_uuid": f"ORPHAN-{index}", "last_name": "X"})
    site.target_options["lobby"] = {"orphans": "delete"}
    site.write_config(max_deletes=1)
    engine = site.engine()
    try:
        plan = engine.plan(engine.read(), deep=True)
    finally:
        engine.close()
    deletes = [a for a in plan.actions if a.op is Op.DELETE]
    assert len(deletes) == 3 and all(a.blocked for a in deletes)
    result = site.run_cli("apply", "--deep", "--yes")
    assert result.returncode == 7, result.stdout + result.stderr
    assert all(f"ORPHAN-{i}" in site.states["lobby"].subjects for i in range(3))


def test_a_terminal_that_cannot_be_observed_never_causes_deletes(site: Ef45Site) -> None:
    tamper(site)
    site.target_options = {name: {"orphans": "delete", "timeout_s": 0.5} for name in site.urls}
    site.write_config()
    site.faults["lab"].error_rate = 1.0
    engine = site.engine()
    try:
        plan = engine.plan(engine.read(), deep=True)
    finally:
        engine.close()
    lab = list(plan.for_target("lab"))
    assert lab == []  # planned from the ledger, which is in step
    assert {(a.op, a.person_key) for a in plan.for_target("lobby")} == {
        (Op.CREATE, GONE), (Op.UPDATE, ALTERED), (Op.UPDATE, CARD), (Op.DELETE, ORPHAN),
    }  # fmt: skip
    assert any(n.startswith("lab: observation failed") for n in plan.notes)
    assert set(plan.unobserved) == {"lab"}


def test_a_deep_apply_whose_look_failed_is_not_a_whole_run(site: Ef45Site) -> None:
    """A terminal that cannot be observed fails the run at that target: the run is not
    ok, the target's health records the error, and no in-step mark is left."""
    site.target_options = {name: {"timeout_s": 0.5} for name in site.urls}
    site.write_config()
    site.faults["lab"].error_rate = 1.0
    engine = site.engine()
    try:
        report = engine.apply(ApplyOptions(trigger="test", deep=True))
        health = load_health(engine.ledger.db)
        with engine.ledger.db.connect() as conn:
            outcome = conn.execute(
                sa.select(runs.c.outcome).where(runs.c.id == report.run_id)
            ).scalar_one()
    finally:
        engine.close()
    assert report.result.errors["lab"].startswith("observation failed")
    assert outcome in ("partial", "failed")
    assert health["lab"].consecutive_failures == 1 and "observation failed" in str(
        health["lab"].last_error
    )
    assert "lobby" not in report.result.errors


def test_a_person_found_on_the_terminal_is_adopted_never_deleted(site: Ef45Site) -> None:
    new_person = employee_id(13)
    site.states["lobby"].add_user({"user_uuid": new_person, "last_name": "Early"})
    write_people_csv(site.workdir / "people.csv", list(sample_rows(13)))
    engine = site.engine()
    try:
        plan = engine.plan(engine.read(), deep=True)
        ops = {(a.target, a.op, a.person_key) for a in plan.actions}
        assert ("lobby", Op.UPDATE, new_person) in ops and ("lab", Op.CREATE, new_person) in ops
        engine.apply(ApplyOptions(trigger="test", deep=True))
        held = engine.ledger.load_held()
    finally:
        engine.close()
    assert held["lobby"][new_person].created_by_syncd is False
    assert held["lab"][new_person].created_by_syncd is True
    assert_ledger_matches_terminals(site)


def test_device_clock_is_set_in_each_terminals_zone(site: Ef45Site) -> None:
    site.target_options = {"lobby": {"time_zone": "Europe/Berlin"}, "lab": {"time_zone": "UTC"}}
    site.write_config()
    engine = site.engine()
    engine.clock = lambda: datetime(2026, 7, 1, 10, 30, 15, tzinfo=UTC)
    try:
        results = set_device_clocks(engine)
    finally:
        engine.close()
    assert all(r.ok for r in results.values())
    assert site.states["lobby"].device_time == datetime(2026, 7, 1, 12, 30, 15)
    assert site.states["lab"].device_time == datetime(2026, 7, 1, 10, 30, 15)
    assert all(s.lock_uid is None for s in site.states.values())


def test_device_clock_cli_reports_a_terminal_it_could_not_set(site: Ef45Site) -> None:
    site.target_options = {"lab": {"timeout_s": 0.5}}
    site.write_config()
    site.faults["lab"].error_rate = 1.0
    before = datetime.now()
    done = site.run_cli("device-clock")
    assert done.returncode == 8, done.stdout + done.stderr
    assert "lobby: clock set to" in done.stdout and "lab: not set" in done.stdout
    lobby_time = site.states["lobby"].device_time
    assert lobby_time is not None
    assert abs((lobby_time - before.astimezone(UTC).replace(tzinfo=None)).total_seconds()) < 60
    assert site.states["lab"].device_time is None
