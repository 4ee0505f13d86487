"""Defective source records are stored with their run and reach every report.

An HR export with one bad row (a badge number that is not a number), a real emulated
terminal, and a ledger on SQLite and on PostgreSQL: an apply and a dry run each store the
row in `run_problems`; the JSON and HTML reports list it; the daemon's reconcile job logs
a warning with the count and does not report "ok"; the Prometheus gauge counts it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from syncd.config import load_config, shipped_path
from syncd.daemon.jobs import available_jobs, call_job
from syncd.daemon.logs import KvFormatter
from syncd.daemon.metrics import DaemonMetrics
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import read_people_csv, sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.report import plan_to_json, render_json
from syncd.engine.report_html import render_html
from syncd.engine.run import ApplyOptions, Syncer
from syncd.ledger import migrate, queries
from syncd.ledger.runproblems import load_problems, problem_counts, record_problems
from syncd.ledger.schema import run_problems
from syncd.ledger.store import create_ledger_engine
from syncd.sources.base import Decision, SourceProblem

NOW = datetime(2026, 12, 1, tzinfo=UTC)
BAD_LINE = 4  # the third data row (the header is line 1)


@pytest.fixture
def engine(tmp_path: Path, ledger_url: str) -> Iterator[Syncer]:
    """An engine over 50 HR rows, one of them bad, and one emulated terminal."""
    rows = list(sample_rows(50))
    rows[BAD_LINE - 2]["badge_number"] = "12AB"
    write_people_csv(tmp_path / "people.csv", rows)
    mapping = shipped_path("mappings", "hr-csv.toml")
    server = EmulatorServer(create_ef45_app(Ef45State())).start()
    config_path = tmp_path / "syncd.toml"
    config_path.write_text(
        "\n".join([
            "[ledger]", f'url = "{ledger_url}"',
            "[apply]", "retry_initial_s = 0.01", "retry_max_s = 0.05",
            "[sources.hr]", 'type = "csv"', f'path = "{tmp_path / "people.csv"}"',
            f'mapping = "{mapping}"',
            "[targets.door]", 'type = "ef45"', f'url = "{server.url}"', "timeout_s = 5", "",
        ]),
        encoding="utf-8",
    )  # fmt: skip
    config = load_config(config_path)
    db = create_ledger_engine(config.ledger.url)
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    built = Syncer.from_config(config)
    try:
        yield built
    finally:
        built.close()
        server.stop()


def _stored(engine: Syncer, run_id: int) -> list[dict[str, object]]:
    query = sa.select(run_problems).where(run_problems.c.run_id == run_id)
    with engine.ledger.db.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def _assert_the_bad_row(rows: list[dict[str, object]], run_id: int) -> None:
    (row,) = rows
    assert row["run_id"] == run_id and row["source"] == "hr"
    assert row["where"] == f"people.csv:{BAD_LINE}:badge_number"
    assert row["field"] == "cards (badge_number)"
    assert row["message"] and row["decision"] in {d.value for d in Decision}


def test_apply_stores_the_skipped_row_with_its_run(engine: Syncer) -> None:
    _, result, run_id = engine.apply(ApplyOptions(trigger="test"))
    assert result.count("applied") == 49 and not result.count("failed")
    _assert_the_bad_row(_stored(engine, run_id), run_id)
    assert engine.applied is not None
    assert load_problems(engine.ledger.db, run_id) == list(engine.applied.problems)
    (history,) = queries.history(engine.ledger.db, 5)
    assert history.id == run_id and history.skipped == 1


def test_dry_run_stores_the_skipped_row_and_reports_list_it(engine: Syncer) -> None:
    reading = engine.read()
    plan = engine.plan(reading)
    run_id = engine.record_dry_run(plan, problems=reading.problems)
    _assert_the_bad_row(_stored(engine, run_id), run_id)
    clean = engine.record_dry_run(plan)
    assert _stored(engine, clean) == []
    document = plan_to_json(plan, reading.problems)
    assert document["problem_count"] == 1
    (problem,) = document["problem_records"]
    assert document["problems"] == [problem["text"]]
    assert problem["source"] == "hr" and problem["field"] == "cards (badge_number)"
    assert problem["where"] == f"people.csv:{BAD_LINE}:badge_number"
    assert set(problem) == {"source", "where", "field", "message", "decision", "text"}
    page = render_html(document)
    assert "Skipped source records (1)" in page and f"people.csv:{BAD_LINE}:badge_number" in page


def test_reconcile_job_warns_with_the_count_and_is_not_ok(
    engine: Syncer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="syncd.daemon.jobs")
    reconcile = available_jobs()["reconcile"]
    result = call_job(reconcile, engine, trigger="test", stop=threading.Event())
    assert result.outcome == "source_problems" and result.problems is not None
    assert len(result.problems) == 1 and "1 source record(s) skipped" in result.summary
    (record,) = [r for r in caplog.records if r.getMessage() == "source records skipped"]
    assert record.levelno == logging.WARNING
    line = KvFormatter().format(record)
    assert "level=warning" in line and "count=1" in line and f"run={result.run_id}" in line
    # The gauge the daemon sets from this result.
    metrics = DaemonMetrics()
    metrics.set_source_problems(engine.sources, result.problems)
    text = generate_latest(metrics.registry).decode()
    decision = result.problems[0].decision
    assert f'syncd_source_problems{{decision="{decision}",source="hr"}} 1.0' in text


def test_source_problems_gauge_is_reset_per_reconcile() -> None:
    metrics = DaemonMetrics()
    problems = [
        SourceProblem("hr", "people.csv:3", "key", "missing", Decision.SKIPPED),
        SourceProblem("hr", "people.csv:4:start_date", "valid_from", "bad", Decision.DISABLED),
        SourceProblem("hr", "people.csv:5:badge_number", "cards", "bad", Decision.DISABLED),
    ]
    metrics.set_source_problems(["hr", "ad"], problems)
    text = generate_latest(metrics.registry).decode()
    assert 'syncd_source_problems{decision="disabled",source="hr"} 2.0' in text
    assert 'syncd_source_problems{decision="skipped",source="hr"} 1.0' in text
    assert 'syncd_source_problems{decision="held",source="hr"} 0.0' in text
    assert 'syncd_source_problems{decision="held",source="ad"} 0.0' in text
    metrics.set_source_problems(["hr"], [])
    text = generate_latest(metrics.registry).decode()
    assert 'syncd_source_problems{decision="disabled",source="hr"} 0.0' in text
    assert 'source="ad"' not in text


def test_a_bad_pin_is_stored_and_reported_without_its_value(engine: Syncer) -> None:
    path = engine.config.sources["hr"].path
    rows = read_people_csv(path)
    rows[7]["pin"] = "98x7"  # not a PIN by the pattern: reported, and never quoted
    write_people_csv(path, rows)
    reading = engine.read()
    run_id = engine.record_dry_run(engine.plan(reading), problems=reading.problems)
    stored = _stored(engine, run_id)
    assert {row["where"] for row in stored} == {
        f"people.csv:{BAD_LINE}:badge_number",
        "people.csv:9:pin",
    }
    document = render_json(plan_to_json(engine.plan(reading), reading.problems))
    assert "98x7" not in repr(stored) and "98x7" not in document
    assert "98x7" not in render_html(plan_to_json(engine.plan(reading), reading.problems))


def test_only_the_problems_of_the_last_runs_are_kept(engine: Syncer) -> None:
    problem = SourceProblem("hr", "people.csv:9", "key", "missing", Decision.SKIPPED)
    ledger = engine.ledger.db
    ids = [engine.ledger.start_run(kind="plan", trigger="test", dry_run=True, now=NOW)
           for _ in range(4)]  # fmt: skip
    for run_id in ids[:3]:
        record_problems(ledger, run_id, [problem], keep_runs=3)
    assert problem_counts(ledger, ids) == dict.fromkeys(ids[:3], 1)
    record_problems(ledger, ids[3], [problem], keep_runs=3)  # the first falls out
    assert problem_counts(ledger, ids) == dict.fromkeys(ids[1:], 1)
