"""Daemon benchmarks: how fast an HR change reaches a terminal, how fast SIGTERM stops.

1. `syncd run` with `reconcile_every_s = 1` on 200 people: the time from rewriting the
   HR file to the terminal holding the change, target ≤ 2 intervals.
2. SIGTERM during an apply of 100 people against a terminal answering in 100 ms: the
   time to exit, target ≤ 2 s (one action in flight plus the unlock; the limit the
   daemon enforces is `stop_timeout_s`).
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

from syncd.emulators.faults import Faults
from syncd.emulators.hr_sample import apply_demo_changes
from tests.fixtures.daemon import DaemonProcess, make_world, wait_for

INTERVAL_S = 1.0


def _change_latency() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for world in make_world(Path(tmp), f"sqlite:///{tmp}/ledger.db", people=200):
            state = world.terminals["lobby"]
            daemon = DaemonProcess(world.config_path)
            try:
                wait_for(lambda: len(state.subjects) == 200, 60, "first reconcile")
                daemon.wait_log(r'msg="job done" job=reconcile', timeout=30)
                changes = apply_demo_changes(world.csv_path)
                started = time.monotonic()
                wait_for(lambda: changes.hired in state.subjects, 30, "the hire")
                return time.monotonic() - started
            finally:
                daemon.stop()
    raise AssertionError("unreachable")


def _stop_latency() -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        faults = Faults(latency_ms=100)
        for world in make_world(Path(tmp), f"sqlite:///{tmp}/ledger.db", 100, faults):
            state = world.terminals["lobby"]
            daemon = DaemonProcess(world.config_path)
            try:
                wait_for(lambda: len(state.subjects) >= 5, 60, "the apply under way")
                started = time.monotonic()
                daemon.signal(signal.SIGTERM)
                code = daemon.proc.wait(timeout=30)
                return time.monotonic() - started, code
            finally:
                daemon.kill()
    raise AssertionError("unreachable")


def run() -> list[dict[str, object]]:
    """Return the benchmark rows (see the module docstring)."""
    latency = _change_latency()
    stop_s, code = _stop_latency()
    return [
        {
            "benchmark": "daemon: HR change → terminal (200 people, every 1 s)",
            "measured": f"{latency:.2f} s",
            "target": f"≤ {2 * INTERVAL_S:g} s (2 intervals)",
            "ok": latency <= 2 * INTERVAL_S,
        },
        {
            "benchmark": "daemon: SIGTERM during apply → exit (100 ms/request)",
            "measured": f"{stop_s:.2f} s",
            "target": "≤ 2 s, exit 0",
            "ok": stop_s <= 2.0 and code == 0,
            "exit": code,
        },
    ]
