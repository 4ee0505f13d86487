"""Daemon steady state: `syncd run` for a simulated hour, 10 000 people, 5 terminals.

A site's hour at the default schedule (`reconcile_every_s = 300`) is 12 reconciles and
60 HR changes (one a minute): 5 changes reach each reconcile. Time is compressed, not the
work: the daemon (a real `syncd run` process) reconciles every 1 s; the bench waits for
each reconcile's `job done` line (events, not sleeps), then writes the next 5 minutes'
changes (5 people get a new last name) into the HR export; 12 such reconciles plus one
more (so that the last changes surely arrive: an overestimate by one reconcile) are the
hour's reconciles. Measured from outside, on the daemon's PID only (/proc/PID/stat:
utime + stime; the five emulated terminals, the CSV writes and this bench run in this
process and are not counted):

- the hour's reconciles: CPU over those 13 reconciles, less the idle CPU of the phase's
  wall time (between the compressed reconciles the daemon idles, as it does between real
  ones; that idle is counted once, below);
- idle: CPU per second of a second daemon that reconciles once, then waits (scheduler,
  metrics endpoint, standby polling), × 3600 s;
- peak RSS: VmHWM of /proc/PID/status at the end of the hour.

CPU per real hour = reconciles' CPU + 3600 s × idle CPU/s. Target: ≤ 2 % of one core =
72 CPU s an hour, and ≤ 150 MiB.

The ledger and the terminals start as a completed first run leaves them (the plan's
creates recorded as applied through `Ledger.record_outcomes`, the same users added to
each emulator with `add_user`) so the bench does not spend minutes on 50 000 creates.
`BENCH_STEADY_PEOPLE` changes the 10 000.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.config import load_config
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import read_people_csv, sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine.run import Syncer
from syncd.ledger.outcomes import Outcome
from syncd.model import ActionOutcome, RunOutcome
from syncd.targets.ef45.wire import split_record, wire_subject
from tests.fixtures.daemon import DaemonProcess, DaemonWorld

PEOPLE = int(os.environ.get("BENCH_STEADY_PEOPLE", "10000"))
TERMINALS = 5
RECONCILES = 12  # an hour at the default reconcile_every_s = 300
CHANGES_EACH = 5  # one HR change a minute
IDLE_S = 10.0
HOUR_S = 3600.0
CPU_TARGET_S = 0.02 * HOUR_S
RSS_TARGET_MIB = 150.0
DONE = r'msg="job done" job=reconcile'
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def peak_rss_mib(pid: int) -> float:
    """Return VmHWM (peak resident set) of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def seed(world: DaemonWorld) -> None:
    """Leave ledger and terminals as a completed first apply would (see the docstring)."""
    engine = Syncer.from_config(load_config(world.config_path))
    try:
        now = datetime.now(UTC)
        reading = engine.read()
        plan = engine.plan(reading)
        for name, read in reading.reads.items():
            engine.ledger.save_people(name, dict(read.people), frozenset(), now)
        run_id = engine.ledger.start_run(kind="apply", trigger="bench", dry_run=False, now=now)
        outcomes = [
            Outcome(run_id, a, ActionOutcome.APPLIED, now, a.person_key) for a in plan.actions
        ]
        engine.ledger.record_outcomes(outcomes)
        engine.ledger.finish_run(run_id, outcome=RunOutcome.OK, counts={}, now=now)
    finally:
        engine.close()
    for action in plan.actions:
        subject, info = split_record(action.record)
        state = world.terminals[action.target]
        body = {"record_version": state.record_version, **wire_subject(subject)}
        state.add_user({**body, **{k: v for k, v in info.items() if k != "user_uuid"}})


class HrExport:
    """The HR export, changed one person at a time (atomically: write, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = read_people_csv(path)
        self.changes = 0

    def change(self, count: int) -> str:
        """Give the next `count` people a new last name; return the last one's key."""
        for _ in range(count):
            row = self.rows[(self.changes * 97) % len(self.rows)]
            self.changes += 1
            row["last_name"] = f"Changed{self.changes}"
        scratch = self.path.with_suffix(".tmp")
        write_people_csv(scratch, self.rows)
        scratch.replace(self.path)
        return row["employee_id"]


def _world(tmp: Path, servers: list[EmulatorServer], states: dict[str, Ef45State]) -> DaemonWorld:
    world = DaemonWorld(tmp, f"sqlite:///{tmp}/ledger.db", states, servers)
    write_people_csv(world.csv_path, sample_rows(PEOPLE))
    world.write_config()
    done = world.cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    return world


def _reconciles(daemon: DaemonProcess) -> int:
    return len(daemon.matching(DONE))


def _hour(world: DaemonWorld, hr: HrExport) -> dict[str, float]:
    """Run the daemon through the compressed hour; return CPU, wall, RSS and checks."""
    daemon = DaemonProcess(world.config_path)
    try:
        daemon.wait_log(DONE, timeout=300)
        first = daemon.matching(DONE)[0]
        pid, seen = daemon.proc.pid, _reconciles(daemon)
        cpu, started = cpu_seconds(pid), time.monotonic()
        key = ""
        for tick in range(1, RECONCILES + 1):
            key = hr.change(CHANGES_EACH)
            daemon.wait_log(DONE, timeout=120, count=seen + tick)
        daemon.wait_log(DONE, timeout=120, count=seen + RECONCILES + 1)
        wall, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
        rss = peak_rss_mib(pid)
        last = f"Changed{hr.changes}"  # the highest number: no other name contains it
        arrived = all(last in str(s.subjects.get(key)) for s in world.terminals.values())
        return {"cpu": cpu, "rss": rss, "wall": wall, "arrived": float(arrived),
                "first": float("outcome=ok" in first)}  # fmt: skip
    finally:
        daemon.stop()


def _idle_rate(world: DaemonWorld) -> float:
    """CPU per second of a daemon between reconciles (one at start, then none)."""
    world.write_config(reconcile_every_s=HOUR_S)
    daemon = DaemonProcess(world.config_path)
    try:
        daemon.wait_log(DONE, timeout=120)
        before, started = cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(IDLE_S)  # the quantity measured is what happens while nothing does
        return (cpu_seconds(daemon.proc.pid) - before) / (time.monotonic() - started)
    finally:
        daemon.stop()


def measure() -> dict[str, float]:
    """Seed, run the steady phases, then the idle phase; return the figures."""
    states = {f"door{i}": Ef45State(capacity=PEOPLE + 100) for i in range(TERMINALS)}
    servers = [EmulatorServer(create_ef45_app(state)).start() for state in states.values()]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-steady-") as name:
            world = _world(Path(name), servers, states)
            started = time.monotonic()
            seed(world)
            seeded = time.monotonic() - started
            figures = _hour(world, HrExport(world.csv_path))
            figures["idle_rate"] = _idle_rate(world)
            figures["seed_s"] = seeded
            return figures
    finally:
        for server in servers:
            server.stop()


def run() -> list[dict[str, Any]]:
    """Return the benchmark rows (see the module docstring)."""
    f = measure()
    idle = f["idle_rate"]
    reconciles = max(0.0, f["cpu"] - idle * f["wall"])
    hour = reconciles + HOUR_S * idle
    changes = RECONCILES * CHANGES_EACH
    return [
        {
            "case": f"daemon CPU per reconcile, {PEOPLE:,} people × {TERMINALS} terminals, "
            f"{CHANGES_EACH} HR changes each",
            "figure": f"{reconciles / (RECONCILES + 1):.3f} CPU s",
            "target": "report (feeds the hour below)",
            "anchor": f"{RECONCILES + 1} reconciles, {changes} changes, compressed "
            f"into {f['wall']:.0f} s",
            "ok": f["first"] == 1.0 and f["arrived"] == 1.0,
            "last_change_on_every_terminal": bool(f["arrived"]),
            "daemon_cpu_in_phase_s": round(f["cpu"], 2),
            "seed_s": round(f["seed_s"], 1),
        },
        {
            "case": "daemon CPU per real hour at the default schedule (simulated)",
            "figure": f"{hour:.1f} CPU s/h = {100 * hour / HOUR_S:.2f} % of a core",
            "target": f"≤ {CPU_TARGET_S:.0f} CPU s/h (2 % of a core)",
            "anchor": f"{reconciles:.1f} s (13 reconciles) + 3600 s × {idle:.4f} idle CPU/s",
            "ok": hour <= CPU_TARGET_S,
            "arithmetic": f"(phase CPU {f['cpu']:.1f} s − idle {idle:.4f}/s × {f['wall']:.0f} s) "
            f"+ 3600 × idle; 12 reconciles/h at 300 s, +1 to see the last changes arrive",
        },
        {
            "case": "daemon peak RSS (VmHWM) after the simulated hour",
            "figure": f"{f['rss']:.0f} MiB",
            "target": f"≤ {RSS_TARGET_MIB:.0f} MiB",
            "ok": f["rss"] <= RSS_TARGET_MIB,
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
