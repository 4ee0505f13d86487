"""`syncd run` with a bad HR row: a warning with the count, not "ok", and a gauge.

The daemon runs as a real process against an emulated terminal. One row of the HR export
has a badge number that is not a number: each reconcile logs `source records skipped`
with count=1, ends with outcome=source_problems, and /metrics shows
`syncd_source_problems{source="hr",…}` at 1. Once the row is fixed, the gauge falls to 0
and the reconcile reports ok again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.emulators.hr_sample import read_people_csv, write_people_csv
from syncd.sources.base import Decision
from tests.fixtures.daemon import DaemonProcess, DaemonWorld, make_world, wait_for


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DaemonWorld]:
    yield from make_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", people=30)


def _skipped(daemon: DaemonProcess) -> float:
    return sum(
        daemon.metric("syncd_source_problems", source="hr", decision=d.value) for d in Decision
    )


def test_bad_row_is_logged_counted_and_not_ok(world: DaemonWorld) -> None:
    rows = read_people_csv(world.csv_path)
    good = rows[3]["badge_number"]
    rows[3]["badge_number"] = "12AB"
    write_people_csv(world.csv_path, rows)
    daemon = DaemonProcess(world.config_path)
    try:
        (warning,) = daemon.wait_log(r'msg="source records skipped"')[:1]
        assert "level=warning" in warning and "count=1" in warning, warning
        daemon.wait_log(r'msg="job done" job=reconcile .*outcome=source_problems')
        wait_for(lambda: _skipped(daemon) == 1, 10, "syncd_source_problems at 1")
        assert daemon.metric("syncd_runs_total", kind="reconcile", outcome="source_problems")
        assert not daemon.matching(r'msg="job done" job=reconcile .*outcome=ok')

        rows[3]["badge_number"] = good
        write_people_csv(world.csv_path, rows)
        daemon.wait_log(r'msg="job done" job=reconcile .*outcome=ok')
        wait_for(lambda: _skipped(daemon) == 0, 10, "syncd_source_problems back at 0")
        assert "syncd_source_problems{" in daemon.get("/metrics").text  # zeros, not absent
    finally:
        daemon.kill()
