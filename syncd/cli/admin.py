"""`syncd approve RUN_ID` and `syncd audit --person KEY`: an administrator's decisions and trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.cli.commands import ApplyOptions, ConfigOption, open_engine, run_apply
from syncd.config import load_config
from syncd.engine.report import device_value
from syncd.errors import SyncdError, UsageError
from syncd.ledger import migrate, queries
from syncd.ledger.store import create_ledger_engine

console = Console()


def register(app: typer.Typer) -> None:
    """Add `approve` and `audit` to `app`."""
    app.command("approve")(approve)
    app.command("audit")(audit)


def approve(
    run_id: Annotated[int, typer.Argument(help="The run whose blocked removals to release.")],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
) -> None:
    """Release the removals a run blocked, and apply them (with the rest of the plan).

    Only the removals blocked in RUN_ID that are still blocked are released; new removals
    stay under the cap.
    """
    settings = load_config(config)
    engine = open_engine(settings, None)
    released = queries.blocked_in_run(engine.ledger.engine, run_id)
    if not released:
        engine.close()
        raise SyncdError(f"run {run_id} has no removals still blocked: nothing to approve")
    console.print(f"releasing {len(released)} removal(s) blocked in run {run_id}")
    run_apply(engine, ApplyOptions(yes=yes, released=released))


def audit(
    person: Annotated[str, typer.Option("--person", "-p", help="The person's key.")],
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many changes at most.")] = 200,
) -> None:
    """Everything that happened to one person across targets, oldest first, with the
    field values before and after each change (PINs and templates redacted)."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        if not queries.person_known(engine, person):
            raise UsageError(f"unknown person {person!r}: the ledger has nothing for this key")
        rows = queries.audit(engine, person, limit)
    finally:
        engine.dispose()
    table = Table(title=f"Audit of {person}", title_justify="left")
    for name in ("at (UTC)", "run", "target", "op", "outcome", "field", "before", "after"):
        table.add_column(name)
    for row in rows:
        head = [row.at.strftime("%Y-%m-%d %H:%M:%S"), str(row.run_id), row.target, row.op]
        for field, before, after in audit_values(row):
            table.add_row(*(escape(cell) for cell in (*head, row.outcome, field, before, after)))
            head = ["", "", "", ""]
        if row.error:
            table.add_row("", "", "", "", "error", "", "", escape(row.error))
    console.print(table)


def audit_values(row: queries.ChangeRow) -> list[tuple[str, str, str]]:
    """Return (field, before, after) for each field an audited change wrote; for an older
    row whose values were not kept, one line saying so."""
    if row.fields is None:
        kept = row.before_digest or row.after_digest
        return [("", "(value not kept)", "(value not kept)")] if kept else [("", "", "")]
    return [
        (name, device_value(before), device_value(after))
        for name, (before, after) in row.fields.items()
    ]
