"""Reports, saved plans, safety caps and approval, quarantine and the audit trail (CLI)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv, write_people_csv
from tests.fixtures.syncd_env import SyncdEnv

pytestmark = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


def test_half_the_hr_file_gone_blocks_removals_until_approved(syncd_env: SyncdEnv) -> None:
    syncd_env.run("apply", "--yes", check=True)
    rows = read_people_csv(syncd_env.csv_path)
    write_people_csv(syncd_env.csv_path, rows[:20])
    refused = syncd_env.run("apply", "--yes")
    assert refused.returncode == 4 and "refused" in refused.stderr  # the shrink guard first
    blocked = syncd_env.run("apply", "--yes", "--allow-shrink")
    assert blocked.returncode == 7, blocked.stdout + blocked.stderr
    assert "blocked by the safety cap" in blocked.stderr
    for state in syncd_env.terminals.values():
        assert all(s["access_allowed"] for s in state.subjects.values())  # nothing disabled
    report = json.loads(syncd_env.run("plan", "--format", "json", "--allow-shrink").stdout)
    assert report["summary"]["lobby"]["blocked"] == 20
    assert all(a["blocked"] for a in report["targets"]["lobby"])
    run_id = blocked.stdout.split("run ", 1)[1].split(":", 1)[0]
    approved = syncd_env.run("approve", run_id, "--yes")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    for state in syncd_env.terminals.values():
        disabled = [k for k, s in state.subjects.items() if not s["access_allowed"]]
        assert len(disabled) == 20


def test_saved_plan_applies_exactly_or_refuses_when_stale(syncd_env: SyncdEnv) -> None:
    plan_file = syncd_env.workdir / "plan.json"
    syncd_env.run("plan", "--format", "json", "--output", str(plan_file), check=True)
    saved = json.loads(plan_file.read_text())
    assert set(saved["fingerprint"]) == {"source", "ledger"}
    applied = syncd_env.run("apply", "--yes", "--plan", str(plan_file))
    assert applied.returncode == 0, applied.stderr
    assert len(syncd_env.terminals["lobby"].subjects) == 40
    syncd_env.run("plan", "--format", "json", "--output", str(plan_file), check=True)
    apply_demo_changes(syncd_env.csv_path)  # the source moves after the plan was made
    stale = syncd_env.run("apply", "--yes", "--plan", str(plan_file))
    assert stale.returncode == 6, stale.stdout + stale.stderr
    assert "source" in stale.stderr and "nothing applied" in stale.stderr
    assert len(syncd_env.terminals["lobby"].subjects) == 40


def test_person_filter_and_html_report(syncd_env: SyncdEnv) -> None:
    one = json.loads(syncd_env.run("plan", "--format", "json", "--person", "E000007").stdout)
    assert {a["person"] for acts in one["targets"].values() for a in acts} == {"E000007"}
    assert [p["key"] for p in one["people"]] == ["E000007"]
    page = syncd_env.run("plan", "--format", "html").stdout
    parser = HTMLParser()
    parser.feed(page)  # well-formed enough to parse; content checks below
    assert page.startswith("<!doctype html>") and "<script" not in page.lower()
    assert page.count("<section class=person") == 40 and page.count("<details>") == 40
    assert "http" not in page  # nothing fetched from the network: one self-contained file
    assert str(syncd_env.config_path) in page  # the header names the config file


def test_unknown_person_is_a_usage_error(syncd_env: SyncdEnv) -> None:
    unknown = syncd_env.run("plan", "--person", "NOPE")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "unknown person 'NOPE'" in unknown.stderr and "in step" not in unknown.stdout


def test_failing_terminal_is_quarantined_and_never_delays_others(syncd_env: SyncdEnv) -> None:
    syncd_env.urls["lab"] = "http://127.0.0.1:9"  # nothing listens there
    syncd_env.apply_settings = ["quarantine_after = 2", "retries = 0"]
    syncd_env.write_config()
    for _ in range(2):
        done = syncd_env.run("apply", "--yes")
        assert done.returncode == 8
    assert len(syncd_env.terminals["lobby"].subjects) == 40
    status = syncd_env.run("status", check=True).stdout
    lab = next(line for line in status.splitlines() if "lab" in line)
    assert "quarantined" in lab
    third = json.loads(syncd_env.run("plan", "--format", "json").stdout)
    assert third["summary"]["lab"]["deferred"] == 40 and third["targets"]["lab"] == []
    assert any("quarantined" in note for note in third["notes"])


def test_audit_and_history_tell_what_happened(syncd_env: SyncdEnv) -> None:
    syncd_env.run("apply", "--yes", check=True)
    changes = apply_demo_changes(syncd_env.csv_path)
    syncd_env.run("apply", "--yes", check=True)
    audit = syncd_env.run("audit", "--person", changes.terminated, check=True).stdout
    assert audit.count("create") == 2 and audit.count("disable") == 2
    assert "access_allowed" in audit and "true" in audit and "false" in audit
    card = syncd_env.run("audit", "--person", changes.card_changed, check=True).stdout
    assert "00 0F 42 55" in card and "00 0F 42 56" in card  # values, not digests
    with_pin = next(r for r in read_people_csv(syncd_env.csv_path) if r["pin"])
    created = syncd_env.run("audit", "--person", with_pin["employee_id"], check=True).stdout
    assert "<redacted>" in created and f" {with_pin['pin']} " not in created
    unknown = syncd_env.run("audit", "--person", "NOPE")
    assert unknown.returncode == 2 and "unknown person 'NOPE'" in unknown.stderr
    history = syncd_env.run("history", check=True).stdout
    assert "apply" in history and "ok" in history
    engine = sa.create_engine(syncd_env.ledger_url)
    with engine.connect() as conn:
        kinds = conn.execute(
            sa.text("SELECT op, outcome, count(*) FROM changes GROUP BY op, outcome")
        ).all()
    engine.dispose()
    assert dict(((op, outcome), n) for op, outcome, n in kinds)[("create", "applied")] == 82


def test_audit_says_when_an_older_row_kept_no_values(syncd_env: SyncdEnv) -> None:
    syncd_env.run("apply", "--yes", check=True)
    engine = sa.create_engine(syncd_env.ledger_url)
    with engine.begin() as conn:  # as a syncd before ledger revision 0004 wrote it
        conn.execute(sa.text("UPDATE changes SET fields = NULL WHERE person_key = 'E000007'"))
    engine.dispose()
    audit = syncd_env.run("audit", "--person", "E000007", check=True).stdout
    assert audit.count("(value not kept)") == 4  # before and after, on lobby and lab
