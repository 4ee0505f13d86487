"""`syncd demo` as a real process: exits 0, shows the runs, a blocked removal and its
approval, writes the HTML report it names, fans an enrollment out, and converges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from syncd.ledger import queries

TARGETS = ("lobby", "lab", "garage", "hq")


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--workdir", str(tmp_path), "--people", "60"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Run 1: dry run" in out and "Run 2: dry run" in out
    assert "CLUe place 'hq'" in out
    assert "Converged" in out and "syncd demo: done" in out
    # The second dry run: the hire, the card and the name go ahead; the three leavers are
    # more than max_deletes = 2, so on every target, the CLUe place included, they wait.
    second = out.split("Run 2: dry run", 1)[1].split("Applying", 1)[0]
    for target in TARGETS:
        row = next(line for line in second.splitlines() if line.startswith(f"{target} "))
        cells = row.split()
        assert cells[1:6] == ["1", "2", "0", "0", "3"], row  # create … delete, blocked
    # ... told person by person, by name.
    assert "name Schmidt → Lindqvist-Schmidt" in second and "card 1000021 → 1000022" in second
    assert "leaves: access removed at lobby, lab, garage, hq" in second
    assert "[safety] max_deletes = 2" in out  # brackets survive: no markup
    assert "syncd approve 2 --yes" in out and "releasing 12 removal(s) blocked in run 2" in out
    assert "run 3: 12 applied, 0 failed, 0 blocked" in out
    assert "irises are on every EF-45 terminal" in out
    # The HTML report is written where the demo says.
    report = tmp_path / "report.html"
    assert f"HTML report of this dry run: {report}" in out
    page = report.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html") and "E000061" in page
    # The ledger tells the same story: blocked, approved (applied), backfill, fan-out.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        runs = sorted(queries.history(engine, 10), key=lambda r: r.id)
    finally:
        engine.dispose()
    assert [(r.kind, r.outcome) for r in runs] == [
        ("apply", "ok"),
        ("apply", "blocked"),
        ("apply", "ok"),
        ("backfill", "ok"),
        ("apply", "ok"),
    ]
