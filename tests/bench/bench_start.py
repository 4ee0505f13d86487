"""Start: how long the `syncd` process takes before it does any work (issue 18, point 1).

Rows, each the median of SYNCD_BENCH_START_RUNS (default 15) whole-process runs, with
the floor (`python -c pass`, the interpreter alone) beside them:
- `syncd --version` and `syncd --help`: target ≤ 0.25 s;
- a no-op `syncd plan` on a tiny site (5 people in a CSV, 1 emulated EF-45 terminal,
  SQLite ledger, already applied): target ≤ 0.4 s;
- `python -X importtime`'s 10 slowest imports (cumulative) of `syncd --help`, as notes.

CPU time (user + system, median) is shown beside: on a shared machine it is the steadier
figure. Runs are interleaved (one of each case per round) so a burst of load on the shared
machine touches every case alike. `tiny_site` is also used by tests/unit/test_cli_start.py.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.config import shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer

RUNS = int(os.environ.get("SYNCD_BENCH_START_RUNS", "15"))
SYNCD = [sys.executable, "-m", "syncd"]
HELP_TARGET_S = 0.25
PLAN_TARGET_S = 0.4


@dataclass(frozen=True)
class TinySite:
    """A configured, applied tiny site: run `syncd` with `environment` in `workdir`."""

    workdir: Path
    environment: dict[str, str]

    def syncd(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m syncd ARGS` here; return the completed process."""
        return subprocess.run(
            [*SYNCD, *args],
            cwd=self.workdir,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )


@contextmanager
def tiny_site(people: int = 5) -> Iterator[TinySite]:
    """Yield a site of `people` in a CSV, one emulated EF-45 terminal and a SQLite
    ledger, migrated and applied, so that `syncd plan` has nothing to do."""
    server = EmulatorServer(create_ef45_app(Ef45State())).start()
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-start-") as directory:
            workdir = Path(directory)
            write_people_csv(workdir / "people.csv", sample_rows(people))
            mapping = shipped_path("mappings", "hr-csv.toml")
            (workdir / "syncd.toml").write_text(
                "\n".join(
                    [
                        "[ledger]",
                        f'url = "sqlite:///{workdir / "ledger.db"}"',
                        "",
                        "[sources.hr]",
                        'type = "csv"',
                        f'path = "{workdir / "people.csv"}"',
                        f'mapping = "{mapping}"',
                        "",
                        "[targets.lobby]",
                        'type = "ef45"',
                        f'url = "{server.url}"',
                        "",
                    ]
                ),
                encoding="utf-8",
            )
            environment = _installed_environment() | {"SYNCD_CONFIG": str(workdir / "syncd.toml")}
            site = TinySite(workdir, environment)
            site.syncd("db", "upgrade")
            site.syncd("apply", "--yes")
            yield site
    finally:
        server.stop()


def _installed_environment() -> dict[str, str]:
    """Return this process's environment as an installed syncd runs in: bytecode caches
    written and used (pip compiles them on install; PYTHONDONTWRITEBYTECODE, set in some
    development shells, would make every start compile syncd's modules again)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _seconds(command: list[str], site: TinySite) -> tuple[float, float]:
    """Run `command` at `site`; return its wall and CPU (user + system) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=site.workdir,
        env=site.environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def import_top(argv: list[str], count: int = 10) -> list[tuple[str, float]]:
    """Return the `count` imports with the largest cumulative time (seconds) when running
    `python -X importtime -m syncd ARGV`, slowest first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "syncd", *argv],
        env=_installed_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    timed: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if cumulative.isdigit():
            timed.append((name, int(cumulative) / 1e6))
    return sorted(timed, key=lambda item: item[1], reverse=True)[:count]


def run() -> list[dict[str, Any]]:
    """Measure the start cases interleaved; return the bench rows."""
    cases: dict[str, tuple[list[str], float | None]] = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], None),
        "syncd --version": ([*SYNCD, "--version"], HELP_TARGET_S),
        "syncd --help": ([*SYNCD, "--help"], HELP_TARGET_S),
        "tiny no-op syncd plan (5 people, 1 EF-45, SQLite)": ([*SYNCD, "plan"], PLAN_TARGET_S),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with tiny_site() as site:
        for command, _target in cases.values():  # warm up: write the bytecode caches
            _seconds(command, site)
        for _ in range(RUNS):
            for name, (command, _target) in cases.items():
                wall, used = _seconds(command, site)
                times[name].append(wall)
                cpu[name].append(used)
    floor = statistics.median(times["python -c pass (floor)"])
    load = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for name, (_command, target) in cases.items():
        median = statistics.median(times[name])
        row: dict[str, Any] = {"case": name, "figure": f"{median:.3f} s"}
        if target is not None:
            row |= {"target": f"≤ {target:g} s", "ok": median <= target}
            row["anchor"] = f"python -c pass {floor:.3f} s"
        else:
            row["target"] = "report"
        row |= {
            "cpu": f"{statistics.median(cpu[name]):.3f} s",
            "min": f"{min(times[name]):.3f} s",
            "runs": RUNS,
            "load": f"{load:.1f}",
        }
        rows.append(row)
    top = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in import_top(["--help"]))
    rows.append(
        {"case": "python -X importtime syncd --help: top 10", "figure": top, "target": "report"}
    )
    return rows
