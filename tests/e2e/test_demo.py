"""`syncd demo` as a real process: exits 0, shows both runs and converges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Run 1: dry run" in out and "Run 2: dry run" in out
    assert "Converged" in out and "syncd demo: done" in out
    assert (tmp_path / "ledger.db").exists()
    # The second dry run shows exactly the four HR changes on each of the three terminals.
    second = out.split("Run 2: dry run", 1)[1].split("Applying", 1)[0]
    for terminal in ("lobby", "lab", "garage"):
        row = next(line for line in second.splitlines() if line.startswith(f"{terminal} "))
        cells = row.split()
        assert cells[1:5] == ["1", "2", "1", "0"], row  # create, update, disable, delete
    # ... told person by person, by name.
    assert "leaves: access removed at lobby, lab, garage" in second
    assert "name Schmidt → Lindqvist-Schmidt" in second and "Noor Haddad" in second
