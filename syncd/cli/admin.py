"""`syncd approve RUN_ID` and `syncd audit --person KEY`: an administrator's decisions and trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from syncd.cli.commands import ApplyOptions, ConfigOption, open_engine, run_apply
from syncd.cli.output import make_console
from syncd.config import load_config
from syncd.errors import UsageError
from syncd.ledger import migrate, queries
from syncd.ledger.store import create_ledger_engine

console = make_console()


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
    stay under the cap. Exit 2 for a run the ledger does not hold or with nothing left to
    approve; 12 when declined, or without a terminal and without --yes (as `apply`).
    """
    settings = load_config(config)
    engine = open_engine(settings, None)
    released = queries.blocked_in_run(engine.ledger.engine, run_id)
    if not released:
        known = queries.run_exists(engine.ledger.engine, run_id)
        engine.close()
        if not known:
            raise UsageError(f"approve {run_id}: no such run in the ledger (see `syncd history`)")
        raise UsageError(f"run {run_id} has no removals still blocked: nothing to approve")
    console.print(f"releasing {len(released)} removal(s) blocked in run {run_id}")
    run_apply(engine, ApplyOptions(yes=yes, released=released))


def audit(
    person: Annotated[str, typer.Option("--person", "-p", help="The person's key.")],
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many changes at most.")] = 200,
) -> None:
    """Everything that happened to one person across targets, oldest first."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        rows = queries.audit(engine, person, limit)
    finally:
        engine.dispose()
    table = Table(title=f"Audit of {person}", title_justify="left")
    for name in ("at (UTC)", "run", "target", "op", "outcome", "before", "after", "error"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row.at.strftime("%Y-%m-%d %H:%M:%S"),
            str(row.run_id),
            row.target,
            row.op,
            row.outcome,
            (row.before_digest or "")[:10],
            (row.after_digest or "")[:10],
            row.error or "",
        )
    console.print(table)
