"""`make bench`: run every benchmark module (or those named) and print ONE table.

Usage: python -m tests.bench [NAME ...]   e.g. `python -m tests.bench plan ef45`, or
`BENCH_ONLY=ef45 make bench` (comma-separated names; `BENCH_ONLY` wins over arguments).

Each module's `run()` returns rows (dicts). The table's columns:

| case | figure | target | anchor/floor | ok? |

- `case` (older modules: `benchmark`): what was measured, prefixed with the module;
- `figure` (older: `measured`): the figure this run measured;
- `target`: what must hold (issue 18), or "report" for a figure with no target;
- `anchor` (optional): what the figure is read against: the physical floor (N × latency,
  a bare request loop, `python -c pass`) or an anchor tool's figure;
- `ok`: False when a target was missed.

Any other key of a row is a detail (a CPU time, a count…), printed under the table with
the row's number. Exit status 1 if any target was missed.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
from dataclasses import dataclass
from typing import Any

from rich.table import Table

import tests.bench as package
from syncd.cli.output import make_console

MAIN_KEYS = {"case", "benchmark", "figure", "measured", "target", "anchor", "ok"}


@dataclass(frozen=True)
class Line:
    """One row of the table, normalised from a module's dict."""

    module: str
    case: str
    figure: str
    target: str
    anchor: str
    ok: bool
    details: str

    @classmethod
    def of(cls, module: str, row: dict[str, Any]) -> Line:
        details = ", ".join(f"{k}={v}" for k, v in row.items() if k not in MAIN_KEYS)
        return cls(
            module=module,
            case=str(row.get("case", row.get("benchmark", "?"))),
            figure=str(row.get("figure", row.get("measured", ""))),
            target=str(row.get("target", "")),
            anchor=str(row.get("anchor", "")),
            ok=bool(row.get("ok", True)),
            details=details,
        )


def _modules(names: list[str]) -> list[str]:
    found = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    if not names:
        return found
    unknown = [n for n in names if f"bench_{n.removeprefix('bench_')}" not in found]
    if unknown:
        known = ", ".join(m.removeprefix("bench_") for m in found)
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; known: {known}")
    return [m for m in found if m.removeprefix("bench_") in names or m in names]


def _selected(argv: list[str]) -> list[str]:
    only = os.environ.get("BENCH_ONLY", "")
    return [n.strip() for n in only.split(",") if n.strip()] if only else argv


def table_of(lines: list[Line]) -> Table:
    """Return the one table (numbered rows: the details below refer to the number)."""
    table = Table(title="syncd benchmarks", title_justify="left")
    for column in ("#", "case", "figure", "target", "anchor/floor", "ok?"):
        table.add_column(column, overflow="fold")
    for number, line in enumerate(lines, 1):
        case = f"{line.module}: {line.case}"
        ok = "yes" if line.ok else "NO"
        table.add_row(str(number), case, line.figure, line.target, line.anchor, ok)
    return table


def main(argv: list[str]) -> int:
    console = make_console()
    lines: list[Line] = []
    for name in _modules(_selected(argv)):
        started = time.monotonic()
        console.print(f"running {name} …")
        rows: list[dict[str, Any]] = importlib.import_module(f"tests.bench.{name}").run()
        lines += [Line.of(name.removeprefix("bench_"), row) for row in rows]
        console.print(f"  {name} took {time.monotonic() - started:.1f} s")
    console.print(table_of(lines))
    for number, line in enumerate(lines, 1):
        if line.details:
            console.print(f"[{number}] {line.details}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"load average (1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores")
    return 1 if any(not line.ok for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
