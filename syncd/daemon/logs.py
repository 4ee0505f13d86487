"""Daemon logs for journald: one line per event, `key=value` or JSON, on stderr.

    ts=2026-05-01T12:00:00Z level=info logger=syncd.daemon msg="job done" job=reconcile …

Fields come from `extra={...}` of the logging call. journald stores each line with its
own timestamp and priority; `ts` keeps the line readable when run by hand. A traceback
is folded into the `exc` field so one event stays one line (one journal entry). Messages
are syncd's own (errors already cut remote bodies and never carry a secret).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    if record.exc_info and record.exc_info[1] is not None:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _kv_value(value: Any) -> str:
    text = str(value).replace("\n", " | ")
    if text and all(c.isalnum() or c in "._-:/@+,[]" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class KvFormatter(logging.Formatter):
    """`key=value` pairs, values quoted when they hold spaces or quotes."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one `key=value …` line."""
        return " ".join(f"{k}={_kv_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON line."""
        return json.dumps(_fields(record), ensure_ascii=False, default=str)


def setup_logging(fmt: str = "kv", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record of the process to `stream` (stderr) in format `fmt`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KvFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter (each HTTP request, each scheduler tick) drowns the journal.
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
