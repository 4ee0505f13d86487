"""The plan-only daemon as a real process: `[daemon] mode = "plan"` against an emulated
EF-45 and a real SMTP server on loopback; and blocked runs of an applying daemon.

Plan mode: a tick plans, stores run-N.json/.html in the state directory and mails the
report; nothing reaches the terminal; a stored plan made stale by an HR change is refused
(exit 6); `syncd approve N` of a fresh one applies it (trigger "approve"); the next plan
is empty and mails nothing. Apply mode: removals over the cap are a WARNING naming them
and the approve command, `outcome=blocked` in the log and in `syncd_runs_total`, and the
command hook gets the stored report.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.emulators.hr_sample import apply_demo_changes, read_people_csv, write_people_csv
from syncd.emulators.server import free_port
from syncd.ledger.schema import runs
from tests.fixtures.daemon import DaemonProcess, DaemonWorld, make_world, wait_for
from tests.fixtures.smtp import SmtpServer, smtp_server

PEOPLE = 20


@pytest.fixture
def world(tmp_path: Path) -> Iterator[DaemonWorld]:
    yield from make_world(tmp_path, f"sqlite:///{tmp_path}/ledger.db", people=PEOPLE)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def _configure(world: DaemonWorld, notify: list[str], **daemon: object) -> None:
    world.write_config(port=free_port(), **daemon)
    text = world.config_path.read_text(encoding="utf-8")
    world.config_path.write_text(text + "\n[notify]\n" + "\n".join(notify) + "\n", "utf-8")


def _run_of(line: str) -> int:
    found = re.search(r" run=(\d+)", line)
    assert found, line
    return int(found.group(1))


def _trigger(world: DaemonWorld) -> None:
    done = world.cli("trigger", "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_plan_mode_stores_mails_and_applies_only_what_is_approved(
    world: DaemonWorld, smtp: SmtpServer
) -> None:
    notify = [
        f'smtp_host = "{smtp.host}"',
        f"smtp_port = {smtp.port}",
        'mail_from = "syncd@example.org"',
        'mail_to = ["admin@example.org"]',
        'subject_prefix = "[syncd test]"',
    ]
    # One tick at start; later ones only on `syncd trigger` (the test's own pace).
    _configure(world, notify, mode="plan", reconcile_every_s=3600, backfill_every_s=60)
    daemon = DaemonProcess(world.config_path)
    try:
        first = _run_of(daemon.wait_log(r'msg="job done" job=reconcile .*outcome=pending')[0])
        reports = world.workdir / "reports"  # the state directory: the SQLite ledger's
        assert (reports / f"run-{first}.json").is_file()
        assert (reports / f"run-{first}.html").is_file()
        [mail] = smtp.mailbox.wait(1)
        assert mail.message["Subject"].startswith(f"[syncd test] run {first} ")
        assert f"{PEOPLE} change(s) await approval" in mail.message["Subject"]
        body = mail.message.get_body(("plain",))
        assert body is not None and f"syncd approve {first}" in body.get_content()
        assert mail.message.get_body(("html",)) is not None
        assert world.terminals["lobby"].subjects == {}  # nothing applied without approval
        assert daemon.metric("syncd_runs_total", kind="reconcile", outcome="pending") == 1
        assert "backfill" not in daemon.wait_log(r'msg="active: this daemon runs the jobs"')[0]
        refused = world.cli("trigger", "device_clock")
        assert refused.returncode != 0 and "plan mode" in refused.stderr

        apply_demo_changes(world.csv_path)  # HR moves after the plan was made
        stale = world.cli("approve", str(first), "--yes")
        assert stale.returncode == 6, stale.stdout + stale.stderr
        assert world.terminals["lobby"].subjects == {}

        _trigger(world)
        second = _run_of(
            daemon.wait_log(r'msg="job done" job=reconcile .*outcome=pending', count=2)[1]
        )
        smtp.mailbox.wait(2)
        approved = world.cli("approve", str(second), "--yes")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert f"run {second}" in approved.stdout
        created = set(world.terminals["lobby"].subjects)
        assert created and created <= {r["employee_id"] for r in read_people_csv(world.csv_path)}

        _trigger(world)
        # The approved plan was the whole of it: the next plan is empty, and not mailed.
        daemon.wait_log(r'msg="job done" job=reconcile .*outcome=ok')
        assert len(smtp.mailbox.messages) == 2
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    engine = sa.create_engine(world.ledger_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.trigger, runs.c.dry_run).order_by(runs.c.id)).all()
    engine.dispose()
    assert [(r.trigger, r.dry_run) for r in rows if not r.dry_run] == [("approve", False)]


def test_blocked_removals_are_a_warning_and_counted_blocked(world: DaemonWorld) -> None:
    hook_out = world.workdir / "hook.txt"
    script = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n' + sys.stdin.read())"
    _configure(world, [f'command = ["{sys.executable}", "-c", "{_escaped(script)}", '
                       f'"{hook_out}"]'])  # fmt: skip
    daemon = DaemonProcess(world.config_path)
    try:
        daemon.wait_log(r'msg="job done" job=reconcile .*outcome=ok')
        rows = read_people_csv(world.csv_path)
        write_people_csv(world.csv_path, rows[:-3])  # 15 % leave: over the 10 % cap
        warning = daemon.wait_log(r"level=warning .*removals blocked by a safety cap")[0]
        run_id = _run_of(warning)
        assert f'approve="syncd approve {run_id}"' in warning
        assert all(f"lobby:{r['employee_id']}:disable" in warning for r in rows[-3:])
        done = daemon.wait_log(rf'level=warning .*msg="job done" job=reconcile .* run={run_id} ')
        assert "outcome=blocked" in done[0]
        wait_for(
            lambda: daemon.metric("syncd_runs_total", kind="reconcile", outcome="blocked") >= 1,
            10,
            "blocked counted",
        )
        wait_for(hook_out.exists, 10, "the hook's output")
        told = hook_out.read_text(encoding="utf-8")
        assert told.startswith(str(world.workdir / "reports" / f"run-{run_id}.html"))
        assert f"syncd approve {run_id}" in told
        assert all(s["access_allowed"] for s in world.terminals["lobby"].subjects.values())
    finally:
        daemon.kill()


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
