"""EF-45 apply throughput: 2 000 creates to each of 10 emulated terminals, 5 ms a request.

The terminals run in a subprocess (`syncd emulate ef45 --count 10 --latency-ms 5`) so
they do not share the GIL with the apply; the ledger is SQLite in a temp dir. Requests to
one terminal are serial, so the physical limit is 2 000 × 5 ms = 10 s (terminals run in
parallel). Rows: the apply's wall time against that limit (target ratio ≤ 1.15), and the
requests per created user, counted by the client's transport (target: 1 with the batch
endpoint; lock, version and record-version requests are per session, not per user).

A third row is the floor these emulators allow: 2 000 bare `GET /version` round trips per
terminal, the terminals in parallel, from a client that does nothing else. The event
loop's timers wake on a whole millisecond, so each emulated 5 ms lasts about 5.4 ms, and
sending, receiving and parsing each request and answer adds to it; no apply can beat
this floor on the same machine.

`BENCH_EF45_TERMINALS` and `BENCH_EF45_USERS` change the counts (e.g. one terminal alone).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from syncd.config import load_config, shipped_path
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import free_port
from syncd.engine.run import ApplyOptions, Syncer
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine

TERMINALS = int(os.environ.get("BENCH_EF45_TERMINALS", "10"))
USERS = int(os.environ.get("BENCH_EF45_USERS", "2000"))
LATENCY_MS = 5.0
TARGET_RATIO = 1.15
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


def _start_emulators(base: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "syncd", "emulate", "ef45", "--count", str(TERMINALS),
               "--port", str(base), "--latency-ms", str(LATENCY_MS)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    for port in range(base, base + TERMINALS):
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


def _write_site(workdir: Path, base: int) -> Path:
    write_people_csv(workdir / "people.csv", list(sample_rows(USERS)))
    mapping = shipped_path("mappings", "hr-csv.toml")
    csv = workdir / "people.csv"
    lines = [
        f'[ledger]\nurl = "sqlite:///{workdir}/ledger.db"\n',
        f'[sources.hr]\ntype = "csv"\npath = "{csv}"\nmapping = "{mapping}"\n',
    ]
    for index in range(TERMINALS):
        url = f"http://127.0.0.1:{base + index}"
        lines.append(f'[targets.t{index}]\ntype = "ef45"\nurl = "{url}"\n')
    path = workdir / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    db = create_ledger_engine(f"sqlite:///{workdir}/ledger.db")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()
    return path


async def _bare_round_trips(base: int) -> float:
    """Return the wall time of USERS sequential GET /version per terminal, all at once."""

    async def one_terminal(port: int) -> None:
        transport = httpx.AsyncHTTPTransport()
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/1.0/version")
        try:
            for _ in range(USERS):
                response = await transport.handle_async_request(request)
                response.raise_for_status()
        finally:
            await transport.aclose()

    started = time.perf_counter()
    await asyncio.gather(*(one_terminal(base + index) for index in range(TERMINALS)))
    return time.perf_counter() - started


def measure() -> dict[str, Any]:
    """Run the apply once, then the bare round trips; return wall times and counts."""
    base = _free_run(TERMINALS)
    emulators = _start_emulators(base)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ef45-") as tmp:
            config = load_config(_write_site(Path(tmp), base))
            counts: Counter[str] = Counter()
            transports = {name: CountingTransport(counts) for name in config.targets}
            engine = Syncer.from_config(config, transports=transports)
            try:
                started = time.perf_counter()
                _, result, _ = engine.apply(ApplyOptions(trigger="bench"))
                wall = time.perf_counter() - started
            finally:
                engine.close()
        floor = asyncio.run(_bare_round_trips(base))
    finally:
        emulators.terminate()
        emulators.wait(timeout=10)
    return {"wall": wall, "floor": floor, "applied": result.count("applied"),
            "failed": result.count("failed"), "requests": counts}  # fmt: skip


def run() -> list[dict[str, object]]:
    """Return the benchmark rows (see the module docstring)."""
    figures = measure()
    limit = USERS * LATENCY_MS / 1000
    ratio = figures["wall"] / limit
    applied = figures["applied"]
    requests: Counter[str] = figures["requests"]
    per_user = requests["user"] / applied if applied else float("inf")
    complete = applied == USERS * TERMINALS and figures["failed"] == 0
    return [
        {
            "benchmark": f"ef45 apply: {TERMINALS}×{USERS} creates @ {LATENCY_MS:g} ms",
            "measured": f"{figures['wall']:.2f} s (ratio {ratio:.3f})",
            "target": f"ratio ≤ {TARGET_RATIO} (limit {limit:g} s)",
            "ok": ratio <= TARGET_RATIO and complete,
            "applied": applied,
            "failed": figures["failed"],
        },
        {
            "benchmark": "ef45 requests per created user",
            "measured": f"{per_user:.3f}",
            "target": "1 (batch POST /user)",
            "ok": per_user <= 1.0 and complete,
            "session_requests": requests["session"],
            "user_requests": requests["user"],
        },
        {
            "benchmark": f"ef45 floor: {TERMINALS}×{USERS} bare GET /version, same emulators",
            "measured": f"{figures['floor']:.2f} s (ratio {figures['floor'] / limit:.3f})",
            "target": "report (what no client can beat here)",
            "ok": True,  # a figure to read the first row against, not a target
            "apply_over_floor": round(figures["wall"] / figures["floor"], 3),
        },
    ]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    for row in run():
        print(row)
