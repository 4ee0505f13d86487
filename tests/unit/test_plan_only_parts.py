"""Plan-only daemon parts: stored reports (written, kept, pruned), notices by mail to a
real SMTP server on loopback (plain, STARTTLS with login) and by a command hook, and
failures that are warnings, never errors."""

from __future__ import annotations

import json
import logging
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.config import NotifyConfig, SecretRef
from syncd.daemon.alerts import Notice, send_notice
from syncd.daemon.planonly import make_notice
from syncd.emulators.server import free_port
from syncd.engine.saved import load_saved_plan
from syncd.engine.stored import prune_reports, store_report, stored_runs
from syncd.model import Plan, TargetSummary
from tests.fixtures.smtp import smtp_server
from tests.fixtures.tls import make_tls_files

FINGERPRINT = {"source": "s" * 64, "ledger": "l" * 64}


def _plan(create: int = 2) -> Plan:
    summary = TargetSummary("lobby", create=create, unchanged=5)
    return Plan((), (summary,), datetime(2026, 5, 1, tzinfo=UTC))


def test_report_stored_private_as_json_and_html(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "reports"
    stored = store_report(directory, 7, _plan(), fingerprint=FINGERPRINT)
    assert stored.json_path == directory / "run-7.json"
    assert stored.html_path == directory / "run-7.html"
    assert json.loads(stored.json_path.read_text())["fingerprint"] == FINGERPRINT
    assert "<html" in stored.html_path.read_text()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(stored.json_path.stat().st_mode) == 0o600
    assert load_saved_plan(stored.json_path).fingerprint == FINGERPRINT
    assert not list(directory.glob(".*"))  # no partial file left


def test_only_the_newest_reports_are_kept(tmp_path: Path) -> None:
    for run_id in (3, 11, 5, 12, 9):
        store_report(tmp_path, run_id, _plan(), keep=3)
    assert stored_runs(tmp_path) == [9, 11, 12]  # by run id, not by name: 11 > 9
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"run-{n}.{ext}" for n in (11, 12, 9) for ext in ("html", "json")
    ]
    assert prune_reports(tmp_path, 1) == [9, 11]


def _notice(tmp_path: Path) -> Notice:
    stored = store_report(tmp_path, 42, _plan(), fingerprint=FINGERPRINT)
    return make_notice(42, _plan(), (), stored, planned=True)


def test_notice_says_what_awaits_and_how_to_approve(tmp_path: Path) -> None:
    notice = _notice(tmp_path)
    assert "run 42" in notice.subject and "2 change(s) await approval" in notice.subject
    assert "syncd approve 42" in notice.summary
    assert "lobby: create=2, update=0" in notice.summary
    assert str(tmp_path / "run-42.html") in notice.summary


def test_mail_reaches_the_smtp_server_with_the_html_report(tmp_path: Path) -> None:
    notice = _notice(tmp_path)
    with smtp_server() as server:
        config = NotifyConfig(
            smtp_host=server.host,
            smtp_port=server.port,
            mail_from="syncd@example.org",
            mail_to=("admin@example.org", "sec@example.org"),
            subject_prefix="[syncd site-a]",
        )
        assert send_notice(config, notice) == ["mail"]
        [mail] = server.mailbox.wait(1)
    assert mail.rcpt_tos == ["admin@example.org", "sec@example.org"]
    assert mail.message["Subject"].startswith("[syncd site-a] run 42 ")
    text = mail.message.get_body(("plain",))
    html = mail.message.get_body(("html",))
    assert text is not None and "syncd approve 42" in text.get_content()
    assert html is not None
    sent = html.get_content().replace("\r\n", "\n").strip()  # SMTP lines end in CRLF
    assert sent == (tmp_path / "run-42.html").read_text().strip()


def test_mail_with_starttls_and_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = make_tls_files(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_cert))  # the test CA, for the client
    monkeypatch.setenv("SMTP_PW", "s3cret-pw")
    notice = _notice(tmp_path)
    with smtp_server(tls=tls, users={"relay": "s3cret-pw"}) as server:
        config = NotifyConfig(
            smtp_host="localhost",
            smtp_port=server.port,
            smtp_starttls=True,
            smtp_user="relay",
            smtp_password=SecretRef(env="SMTP_PW"),
            mail_from="syncd@example.org",
            mail_to=("admin@example.org",),
        )
        assert send_notice(config, notice) == ["mail"]
        [mail] = server.mailbox.wait(1)
    assert mail.login == "relay"


def test_command_gets_the_report_paths_and_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    script = (
        "import os, sys; open(sys.argv[1], 'w').write("
        "'\\n'.join(sys.argv[2:] + [os.environ['SYNCD_RUN'], sys.stdin.read()]))"
    )
    notice = _notice(tmp_path)
    config = NotifyConfig(command=(sys.executable, "-c", script, str(out)))
    assert send_notice(config, notice) == ["command"]
    html, json_path, run, summary = out.read_text().split("\n", 3)
    assert (html, json_path, run) == (
        str(tmp_path / "run-42.html"),
        str(tmp_path / "run-42.json"),
        "42",
    )
    assert summary == notice.summary


def test_failures_are_warnings_not_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(tmp_path)
    config = NotifyConfig(
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens there
        smtp_timeout_s=5,
        mail_from="syncd@example.org",
        mail_to=("admin@example.org",),
        command=(sys.executable, "-c", "import time; time.sleep(30)"),
        command_timeout_s=0.5,
    )
    with caplog.at_level(logging.WARNING, logger="syncd.daemon.alerts"):
        assert send_notice(config, notice) == []
    failed = {r.channel: r.error for r in caplog.records if r.msg == "notification failed"}  # type: ignore[attr-defined]
    assert set(failed) == {"mail", "command"}
    assert "ConnectionRefused" in failed["mail"]
    assert "killed" in failed["command"]


def test_mail_needs_sender_and_recipients() -> None:
    with pytest.raises(ValueError, match="mail_from and mail_to"):
        NotifyConfig(smtp_host="relay.example.org")


def test_a_report_with_the_same_actions_as_the_last_says_so(tmp_path: Path) -> None:
    assert store_report(tmp_path, 1, _plan(2)).same_as is None
    assert store_report(tmp_path, 2, _plan(2), keep=1).same_as == 1
    other = Plan((), (TargetSummary("hq", create=1),), datetime(2026, 5, 1, tzinfo=UTC))
    assert store_report(tmp_path, 3, other).same_as is None
