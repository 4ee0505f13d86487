"""EF-45 apply against a realistic terminal: creates at 20 ms (and 50 ms) a request.

A real terminal spends ~20 ms on a request (its own work, not the network), and requests
to one terminal are serial, so N creates cannot take less than N × latency: the serial
limit. The emulated terminals run in a separate process (`syncd emulate ef45 --count 11
--latency-ms L`) so that neither their wall time nor their CPU is the client's; the
apply (`Syncer.apply`: read the HR CSV, plan, apply, record in a SQLite ledger) runs in
this process. For each latency:

- 1 terminal: N creates; target ≤ 1.05 × N × latency;
- 10 terminals (in parallel): N creates each; target ≤ 1.10 × N × latency;
- requests per created user on new firmware (the batch `POST /user`), counted by the
  client's transport: target 1 (lock, version and record-version are per session);
- the client's CPU per request: this process's CPU time (every thread) from the plan
  being made to the apply's end, over the requests sent; target ≤ 0.5 ms. The anchor is
  the same figure for a bare loop of `httpx.AsyncClient` GETs (what the stock client
  costs with nothing else to do).

The wall rows are read against their limit in the same run (ratios), not against a
fixed time. `BENCH_EF45_USERS` (default 200) changes N at 20 ms (N/2 at 50 ms).
`BENCH_EF45_PROFILE=FILE` writes a cProfile of the 10-terminal 20 ms apply to FILE
(`python -m pstats FILE`).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from syncd.config import load_config, shipped_path
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import free_port
from syncd.engine.run import ApplyOptions, Syncer
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine
from syncd.model import ActionOutcome, Plan

USERS = int(os.environ.get("BENCH_EF45_USERS", "200"))
LATENCIES_MS = (20.0, 50.0)
MANY = 10
RATIO_ONE, RATIO_MANY = 1.05, 1.10
CPU_TARGET_MS = 0.5
SESSION_PATHS = ("/1.0/lock", "/1.0/version", "/1.0/subjects/record-version")


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests by kind (per session or per user) on the way through."""

    def __init__(self, counts: Counter[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()  # what a session's client uses
        self.counts = counts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = request.url.path.startswith(SESSION_PATHS)
        self.counts["session" if session else "user"] += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class Applied:
    """What one apply did and cost."""

    terminals: int
    users: int
    wall_s: float
    """From the plan being made to the apply's end (the requests' part)."""
    cpu_s: float
    """This process's CPU time over the same span."""
    loop_cpu_s: float
    """The part of `cpu_s` spent in the main thread (event loop: engine, target, httpx);
    the rest is other threads (the ledger writer)."""
    applied: int
    failed: int
    requests: Counter[str]

    @property
    def per_request_ms(self) -> float:
        return 1000 * self.cpu_s / max(1, sum(self.requests.values()))


def _free_run(count: int) -> int:
    """Return a base port with `count` consecutive free ports."""
    for _ in range(50):
        base = free_port()
        if base + count < 65_000 and all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_emulators(base: int, count: int, latency_ms: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "syncd", "emulate", "ef45", "--count", str(count),
               "--port", str(base), "--latency-ms", str(latency_ms)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    for port in range(base, base + count):
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/1.0/version", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise RuntimeError("emulators did not start") from None
                time.sleep(0.1)
    return process


def _write_site(workdir: Path, ports: range, users: int) -> Path:
    csv = workdir / "people.csv"
    write_people_csv(csv, list(sample_rows(users)))
    mapping = shipped_path("mappings", "hr-csv.toml")
    lines = [
        f'[ledger]\nurl = "sqlite:///{workdir}/ledger.db"\n',
        f'[sources.hr]\ntype = "csv"\npath = "{csv}"\nmapping = "{mapping}"\n',
    ]
    for port in ports:
        lines.append(f'[targets.t{port}]\ntype = "ef45"\nurl = "http://127.0.0.1:{port}"\n')
    path = workdir / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    db = create_ledger_engine(f"sqlite:///{workdir}/ledger.db")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return path


def apply_once(ports: range, users: int, profile: str = "") -> Applied:
    """Create `users` people on the terminals at `ports` (empty); time the requests' part."""
    with tempfile.TemporaryDirectory(prefix="bench-ef45-") as tmp:
        config = load_config(_write_site(Path(tmp), ports, users))
        counts: Counter[str] = Counter()
        transports = {name: CountingTransport(counts) for name in config.targets}
        engine = Syncer.from_config(config, transports=transports)
        marks: list[float] = []

        def planned(_: Plan) -> bool:
            marks.extend((time.perf_counter(), time.process_time(), time.thread_time()))
            return True

        profiler = cProfile.Profile() if profile else None
        try:
            if profiler:
                profiler.enable()
            _, result, _ = engine.apply(ApplyOptions(trigger="bench"), before_apply=planned)
            wall, cpu = time.perf_counter() - marks[0], time.process_time() - marks[1]
            loop_cpu = time.thread_time() - marks[2]
        finally:
            if profiler:
                profiler.disable()
                profiler.dump_stats(profile)
            engine.close()
    return Applied(len(ports), users, wall, cpu, loop_cpu, result.count(ActionOutcome.APPLIED),
                   result.count(ActionOutcome.FAILED), counts)  # fmt: skip


async def _bare_gets(ports: range, per_port: int) -> tuple[float, int]:
    """Return (CPU s, requests) of `per_port` sequential GETs per terminal, all at once."""

    async def one(port: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(per_port):
                (await client.get("/1.0/version")).raise_for_status()

    started = time.process_time()
    await asyncio.gather(*(one(port) for port in ports))
    return time.process_time() - started, per_port * len(ports)


def _rows(latency_ms: float, one: Applied, many: Applied, bare_ms: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run, bound in ((one, RATIO_ONE), (many, RATIO_MANY)):
        limit = run.users * latency_ms / 1000
        ratio = run.wall_s / limit
        complete = run.applied == run.users * run.terminals and run.failed == 0
        rows.append(
            {
                "case": f"apply {run.users} creates → {run.terminals} terminal(s) "
                f"@ {latency_ms:g} ms",
                "figure": f"{run.wall_s:.2f} s = {ratio:.3f} × limit",
                "target": f"≤ {bound:.2f} × limit",
                "anchor": f"serial limit {run.users} × {latency_ms:g} ms = {limit:g} s",
                "ok": ratio <= bound and complete,
                "applied": run.applied,
                "failed": run.failed,
            }
        )
    per_user = many.requests["user"] / max(1, many.applied)
    rows.append(
        {
            "case": f"requests per created user (new firmware) @ {latency_ms:g} ms",
            "figure": f"{per_user:.3f}",
            "target": "1 (batch POST /user)",
            "anchor": "old firmware: 1 + one per card/PIN/window call",
            "ok": per_user <= 1.0 and many.applied > 0,
            "session_requests": many.requests["session"],
            "user_requests": many.requests["user"],
        }
    )
    for run in (one, many):
        rows.append(
            {
                "case": f"client CPU per request, {run.terminals} terminal(s) @ {latency_ms:g} ms",
                "figure": f"{run.per_request_ms:.2f} ms",
                "target": f"≤ {CPU_TARGET_MS} ms",
                "anchor": f"bare httpx.AsyncClient GET: {bare_ms:.2f} ms",
                "ok": run.per_request_ms <= CPU_TARGET_MS,
                "cpu_s": round(run.cpu_s, 2),
                "event_loop_thread_cpu_s": round(run.loop_cpu_s, 2),
                "ledger_writer_cpu_s": round(run.cpu_s - run.loop_cpu_s, 2),
                "requests": sum(run.requests.values()),
            }
        )
    return rows


def measure(latency_ms: float, users: int) -> list[dict[str, Any]]:
    """One emulator process with 1 + 10 terminals at `latency_ms`; return the rows."""
    base = _free_run(1 + MANY)
    emulators = _start_emulators(base, 1 + MANY, latency_ms)
    profile = os.environ.get("BENCH_EF45_PROFILE", "") if latency_ms == 20 else ""
    try:
        one = apply_once(range(base, base + 1), users)
        many = apply_once(range(base + 1, base + 1 + MANY), users, profile)
        bare_cpu, bare_requests = asyncio.run(_bare_gets(range(base, base + 1 + MANY), 50))
    finally:
        emulators.terminate()
        emulators.wait(timeout=10)
    return _rows(latency_ms, one, many, 1000 * bare_cpu / bare_requests)


def run() -> list[dict[str, Any]]:
    """Return the benchmark rows (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    for latency_ms in LATENCIES_MS:
        rows += measure(latency_ms, USERS if latency_ms <= 20 else USERS // 2)
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
