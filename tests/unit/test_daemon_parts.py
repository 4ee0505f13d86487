"""The daemon's parts without a process: sd_notify, logs, job table, config, HTTP app."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import threading
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from syncd.config import DaemonConfig
from syncd.daemon import jobs
from syncd.daemon.http import Hooks, Listener, parse_listen
from syncd.daemon.logs import JsonFormatter, KvFormatter
from syncd.daemon.metrics import DaemonMetrics
from syncd.daemon.notify import Notifier, Watchdog, socket_address, watchdog_interval
from syncd.emulators.server import free_port


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_notify_sends_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with _receiver(str(path)) as sock:
        notifier = Notifier(str(path))
        notifier.ready("up")
        assert sock.recv(1024) == b"READY=1\nSTATUS=up"
        notifier.status("two\nREADY=1")  # a newline cannot forge a field
        assert sock.recv(1024) == b"STATUS=two READY=1"
        notifier.stopping()
        assert sock.recv(1024).startswith(b"STOPPING=1")


def test_notify_supports_abstract_sockets() -> None:
    name = f"@syncd-test-{uuid.uuid4().hex}"
    assert socket_address(name) == b"\0" + name[1:].encode()
    with _receiver(socket_address(name)) as sock:
        assert Notifier(name).send(WATCHDOG="1")
        assert sock.recv(1024) == b"WATCHDOG=1"


def test_notify_without_socket_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and not notifier.send(READY="1")
    assert not Notifier("/nonexistent/socket").send(READY="1")  # logged, never raised


def test_watchdog_interval_is_half_of_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 1.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}) is None
    mine = {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 0.0005


def test_watchdog_pings_only_while_alive(tmp_path: Path) -> None:
    path = tmp_path / "w.sock"
    alive = threading.Event()
    alive.set()
    with _receiver(str(path)) as sock:
        dog = Watchdog(Notifier(str(path)), 0.02, alive.is_set).start()
        assert sock.recv(64) == b"WATCHDOG=1"
        alive.clear()
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            while True:  # drain pings sent before the flag turned
                sock.recv(64)
        dog.stop()


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("syncd.x", logging.INFO, "f", 1, "job %s", ("done",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_kv_and_json_log_lines_carry_extra_fields() -> None:
    kv = KvFormatter().format(_record(job="reconcile", summary="1 applied, 0 failed"))
    assert 'msg="job done"' in kv and "job=reconcile" in kv
    assert 'summary="1 applied, 0 failed"' in kv and "\n" not in kv
    data = json.loads(JsonFormatter().format(_record(run=7)))
    assert data["msg"] == "job done" and data["run"] == 7 and data["level"] == "info"


def test_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "crash", (), sys.exc_info())
    line = KvFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in line


def test_daemon_config_defaults_and_limits() -> None:
    config = DaemonConfig()
    assert config.stop_timeout_s == 30 and config.log_format == "kv"
    assert config.metrics_listen == "127.0.0.1:9464"
    with pytest.raises(ValidationError):
        DaemonConfig(log_format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        DaemonConfig(reconcile_cron="every minute")
    with pytest.raises(ValidationError):
        DaemonConfig(stop_timeout_s=0)


def test_job_table_triggers_follow_the_config() -> None:
    triggers = jobs.triggers(DaemonConfig(reconcile_every_s=60, backfill_every_s=0))
    assert {"reconcile", "deep_reconcile", "events", "device_clock"} <= set(triggers)
    assert "backfill" not in triggers
    cron = jobs.triggers(DaemonConfig(reconcile_cron="*/5 * * * *"))["reconcile"]
    assert "cron" in type(cron).__name__.lower()


def test_bad_cron_lines_are_all_reported_at_load() -> None:
    with pytest.raises(ValidationError) as caught:
        DaemonConfig(reconcile_cron="61 * * * *", device_clock_cron="x y z w v")
    wrong = {error["loc"] for error in caught.value.errors()}
    assert wrong == {("reconcile_cron",), ("device_clock_cron",)}


def test_every_job_of_the_table_has_its_engine_function() -> None:
    available = jobs.available_jobs()
    assert set(available) == set(jobs.JOB_NAMES)
    assert all(callable(function) for function in available.values())


def test_call_job_passes_only_the_keywords_a_function_takes() -> None:
    seen: dict[str, object] = {}

    def takes_trigger(engine: object, *, trigger: str) -> None:
        seen["trigger"] = trigger

    stop = threading.Event()
    result = jobs.call_job(takes_trigger, object(), trigger="daemon", stop=stop)  # type: ignore[arg-type]
    assert seen == {"trigger": "daemon"} and result.outcome == "ok"

    class Outcome:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

    def per_target(engine: object) -> dict[str, Outcome]:
        return {"lobby": Outcome(True), "lab": Outcome(False)}

    summary = jobs.call_job(per_target, object(), trigger="daemon", stop=stop)  # type: ignore[arg-type]
    assert summary.outcome == "failed" and "lab" in summary.summary


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:80") == ("::1", 80)
    with pytest.raises(ValueError):
        parse_listen("localhost")


def test_http_app_health_metrics_and_trigger() -> None:
    metrics = DaemonMetrics()
    metrics.job_done("reconcile", "ok", 0.3)
    triggered: list[str] = []
    healthy = {"ok": True}

    def trigger(name: str) -> tuple[int, str]:
        triggered.append(name)
        return 202, f"{name} queued"

    hooks = Hooks(metrics.registry, lambda: (healthy["ok"], "ok active"), trigger)
    listener = Listener(hooks, f"127.0.0.1:{free_port()}").start()
    base = f"http://127.0.0.1:{listener.port}"
    try:
        assert httpx.get(base + "/healthz").status_code == 200
        healthy["ok"] = False
        assert httpx.get(base + "/healthz").status_code == 503
        text = httpx.get(base + "/metrics").text
        assert 'syncd_runs_total{kind="reconcile",outcome="ok"} 1.0' in text
        assert "syncd_leader 0.0" in text
        assert httpx.post(base + "/jobs/reconcile/run").status_code == 202
        assert httpx.get(base + "/jobs/reconcile/run").status_code == 405
        assert triggered == ["reconcile"]
    finally:
        listener.stop()


def _config_models() -> list[type[BaseModel]]:
    from syncd import config

    return [
        value
        for value in vars(config).values()
        if isinstance(value, type)
        and issubclass(value, config.Strict)
        and value is not config.Strict
    ]


def test_example_config_documents_every_key() -> None:
    example = Path(__file__).resolve().parents[2] / "systemd" / "syncd.toml.example"
    text = example.read_text(encoding="utf-8")
    tomllib.loads(text)
    missing = [
        f"{model.__name__}.{name}"
        for model in _config_models()
        for name in model.model_fields
        if model.__name__ not in ("Config", "SecretRef")
        and not re.search(rf"^#?\s*{name}\s*=", text, re.M)
    ]
    assert not missing, f"keys missing from syncd.toml.example: {missing}"
