"""`make bench`: run every benchmark module (or those named) and print one table.

Usage: python -m tests.bench [NAME ...]   e.g. `python -m tests.bench plan ef45`
Each row is a dict with at least `benchmark`, `measured`, `target` and `ok`; other keys
are shown in the notes column. Exit status 1 if any target was missed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

import tests.bench as package


def _modules(names: list[str]) -> list[str]:
    found = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")
    )
    if not names:
        return found
    return [m for m in found if m.removeprefix("bench_") in names or m in names]


def main(argv: list[str]) -> int:
    console = Console()
    table = Table(title="syncd benchmarks", title_justify="left")
    for column in ("module", "benchmark", "measured", "target", "ok", "notes"):
        table.add_column(column)
    missed = 0
    for name in _modules(argv):
        started = time.monotonic()
        console.print(f"running {name} …")
        rows: list[dict[str, Any]] = importlib.import_module(f"tests.bench.{name}").run()
        for row in rows:
            ok = bool(row.get("ok", True))
            missed += not ok
            notes = ", ".join(
                f"{k}={v}"
                for k, v in row.items()
                if k not in {"benchmark", "measured", "target", "ok"}
            )
            table.add_row(
                name.removeprefix("bench_"),
                str(row["benchmark"]),
                str(row["measured"]),
                str(row.get("target", "")),
                "yes" if ok else "[red]NO[/red]",
                notes,
            )
        console.print(f"  {name} took {time.monotonic() - started:.1f} s")
    console.print(table)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
