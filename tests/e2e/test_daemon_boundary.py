"""`syncd run` acts on time, not only on change: a door opens at a start boundary.

The HR export gives one hire a start a few seconds ahead (an ISO timestamp, through a
mapping that reads it as such). The daemon's reconcile runs once at start (the hire is
created ahead with access off) and then only hourly; the door must still open within
60 s of the boundary, by the one-off reconcile the daemon queues for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.config import shipped_path
from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from tests.fixtures.daemon import DaemonProcess, DaemonWorld, make_world, wait_for

LEAD_S = 8.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DaemonWorld]:
    yield from make_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", people=5)


def test_daemon_opens_the_door_within_60_s_of_a_start_boundary(world: DaemonWorld) -> None:
    shipped = shipped_path("mappings", "hr-csv.toml").read_text(encoding="utf-8")
    timed = shipped.replace(
        'valid_from = "{start_date|date:%Y-%m-%d}"', 'valid_from = "{start_date}"'
    )
    assert timed != shipped
    mapping = world.workdir / "hr-timed.toml"
    mapping.write_text(timed, encoding="utf-8")
    rows = read_people_csv(world.csv_path)
    for row in rows:
        row["start_date"] = "2020-01-01T00:00:00+00:00"
        row["status"] = "active"
    hire = rows[0]["employee_id"]
    boundary = (datetime.now(UTC) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    rows[0]["start_date"] = boundary.isoformat()
    write_people_csv(world.csv_path, rows)
    config = world.write_config(reconcile_every_s=3600.0)
    text = config.read_text(encoding="utf-8").replace(
        str(shipped_path("mappings", "hr-csv.toml")), str(mapping)
    )
    config.write_text(text, encoding="utf-8")
    lobby = world.terminals["lobby"]
    daemon = DaemonProcess(config)
    try:
        daemon.wait_log(r'msg="job done" job=reconcile .*trigger=daemon', timeout=30)
        if datetime.now(UTC) < boundary:  # the first reconcile ran before the boundary
            with lobby.mutex:
                assert lobby.subjects[hire]["access_allowed"] is False  # created ahead
        daemon.wait_log(r'msg="next access boundary"', timeout=30)

        def opened() -> bool:
            with lobby.mutex:
                subject = lobby.subjects.get(hire)
                return bool(subject and subject["access_allowed"])

        wait_for(opened, LEAD_S + 60, "the door to open at the boundary")
        seen = datetime.now(UTC)
        assert seen >= boundary  # never before the window opens
        assert seen - boundary < timedelta(seconds=60)
        daemon.wait_log(r'msg="job done" job=reconcile .*trigger=boundary', timeout=10)
        assert len(daemon.matching(r'msg="job started" job=reconcile .*trigger=daemon')) == 1
    finally:
        daemon.kill()
