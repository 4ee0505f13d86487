"""Rich tables for `syncd status` and `syncd history`.

Cells are `Text`, never markup: a target name, a run's message or a count key prints as
written whatever console shows the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.table import Table
from rich.text import Text

from syncd.errors import cut
from syncd.ledger.queries import RunRow, TargetStatus

ERROR_WIDTH = 80
"""A status line's last error is cut to this many characters (`syncd audit` has all)."""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


def status_table(rows: Sequence[TargetStatus]) -> Table:
    """Return one row per target: held, ok, failed, blocked, findings, last applied,
    health, and its last error (cut short; its text is never read as markup)."""
    table = Table(title="Targets", title_justify="left")
    names = ("target", "held", "ok", "failed", "blocked", "findings", "last applied (UTC)")
    for name in names:
        table.add_column(name, justify="left" if name == "target" else "right")
    table.add_column("health")
    table.add_column("last error (UTC)")
    for row in rows:
        table.add_row(
            Text(row.target),
            str(row.held),
            str(row.ok),
            str(row.failed),
            str(row.blocked),
            str(row.open_findings),
            _when(row.last_applied),
            _health(row),
            _last_error(row),
        )
    return table


def _last_error(row: TargetStatus) -> Text:
    if row.last_error is None:
        return Text("")
    return Text(f"{_when(row.last_error_at)} {cut(row.last_error, ERROR_WIDTH)}")


def _health(row: TargetStatus) -> Text:
    if row.quarantined_since is not None:
        return Text.assemble(("quarantined", "red"), f" since {_when(row.quarantined_since)}")
    if row.consecutive_failures:
        return Text(f"{row.consecutive_failures} failed run(s) in a row", style="yellow")
    return Text("ok")


def history_table(rows: Sequence[RunRow]) -> Table:
    """Return one row per run, newest first."""
    table = Table(title="Runs", title_justify="left")
    for name in ("run", "kind", "trigger", "started (UTC)", "outcome", "skipped", "counts"):
        table.add_column(name, justify="right" if name == "skipped" else "left")
    for row in rows:
        counts = "; ".join(
            f"{target}: " + ", ".join(f"{k}={v}" for k, v in sorted(c.items()) if v)
            for target, c in sorted(row.counts.items())
        )
        kind = f"{row.kind} (dry)" if row.dry_run else row.kind
        skipped = str(row.skipped) if row.skipped else ""
        table.add_row(
            str(row.id),
            Text(kind),
            Text(row.trigger),
            _when(row.started_at),
            Text(row.outcome),
            skipped,
            Text(counts),
        )
    return table
