"""Telling a person that a run needs them: mail through an SMTP relay, or a command hook.

`send_notice(config.notify, notice)` sends one `Notice` each way `[notify]` configures:

- mail (`smtp_host` set): stdlib smtplib, STARTTLS when `smtp_starttls`, login when
  `smtp_user` (password from its secret reference, read at send time, never logged); the
  text summary is the plain part and the HTML report, when there is one, the HTML part
  (a mail client shows it; it needs no JavaScript);
- command (`command` non-empty): run as `command… HTML_REPORT JSON_REPORT` (no report
  paths when there is none) with the summary on stdin and `SYNCD_RUN`/`SYNCD_SUBJECT` in
  its environment, killed after `command_timeout_s`.

A failure of either is logged as a warning and never raised: a notification lost must not
fail the job that found something to tell (the run, its report and the log remain).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from syncd.config import NotifyConfig
from syncd.engine.stored import StoredReport
from syncd.errors import SyncdError, cut

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """What to tell: a subject line, a text summary and the run's stored report (if any)."""

    run_id: int
    subject: str
    summary: str
    report: StoredReport | None = None


def send_notice(config: NotifyConfig, notice: Notice) -> list[str]:
    """Send `notice` by every channel `config` turns on; return the channels that worked.

    Never raises: each failure is logged as a warning naming the channel and the run.
    """
    sent: list[str] = []
    channels = (("mail", bool(config.smtp_host), _mail), ("command", bool(config.command), _run))
    for name, wanted, send in channels:
        if not wanted:
            continue
        try:
            send(config, notice)
        except Exception as exc:  # any failure: the job goes on (module docstring)
            log.warning(
                "notification failed",
                extra={"channel": name, "run": notice.run_id, "error": _describe(exc)},
            )
            continue
        sent.append(name)
        log.info("notification sent", extra={"channel": name, "run": notice.run_id})
    return sent


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"command still running after {exc.timeout:g} s: killed"
    return cut(f"{type(exc).__name__}: {exc}")


def build_message(config: NotifyConfig, notice: Notice) -> EmailMessage:
    """Return the mail of `notice`: the summary as text, the HTML report as HTML part."""
    message = EmailMessage()
    message["Subject"] = f"{config.subject_prefix} {notice.subject}".strip()
    message["From"] = config.mail_from
    message["To"] = ", ".join(config.mail_to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=config.mail_from.rpartition("@")[2] or None)
    message.set_content(notice.summary)
    if notice.report is not None and notice.report.html_path.exists():
        html = notice.report.html_path.read_text(encoding="utf-8")
        message.add_alternative(html, subtype="html")
    return message


def _mail(config: NotifyConfig, notice: Notice) -> None:
    message = build_message(config, notice)
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_s) as smtp:
        if config.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.smtp_user:
            password = (
                config.smtp_password.read("notify.smtp_password")
                if config.smtp_password is not None
                else ""
            )
            smtp.login(config.smtp_user, password)
        smtp.send_message(message)


def _run(config: NotifyConfig, notice: Notice) -> None:
    paths = [str(notice.report.html_path), str(notice.report.json_path)] if notice.report else []
    env = {**os.environ, "SYNCD_RUN": str(notice.run_id), "SYNCD_SUBJECT": notice.subject}
    done = subprocess.run(  # noqa: S603 - the administrator's own configured command
        [*config.command, *paths],
        input=notice.summary,
        capture_output=True,
        text=True,
        timeout=config.command_timeout_s,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        said = cut(done.stderr.strip() or done.stdout.strip())
        raise SyncdError(f"{config.command[0]} exited {done.returncode}: {said}")
