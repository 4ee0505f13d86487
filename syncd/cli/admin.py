"""`syncd approve RUN_ID` and `syncd audit --person KEY`: an administrator's decisions and trail."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from syncd.cli.commands import ApplyRequest, ConfigOption, open_syncer, run_apply
from syncd.cli.output import make_console
from syncd.config import Config, load_config
from syncd.engine.report import device_value
from syncd.engine.run import ApplyOptions, Syncer
from syncd.engine.saved import load_saved_plan
from syncd.engine.stored import report_paths, reports_directory
from syncd.errors import UsageError
from syncd.ledger import migrate, queries
from syncd.ledger.store import create_ledger_engine

console = make_console()


def register(app: typer.Typer) -> None:
    """Add `approve` and `audit` to `app`."""
    app.command("approve")(approve)
    app.command("audit")(audit)


def approve(
    run_id: Annotated[
        int, typer.Argument(help="An apply whose blocked removals to release, or a stored plan.")
    ],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
) -> None:
    """Release the removals a run blocked, and apply them (with the rest of the plan); or
    apply a plan the plan-only daemon stored (RUN_ID a dry run), exactly as reviewed.

    For an apply, only the removals blocked in RUN_ID that are still blocked are released;
    new removals stay under the cap. For a stored plan, its actions (its blocked removals
    included) are applied if the source and the ledger are as it saw them (else exit 6).
    Exit 2 for a run the ledger does not hold or with nothing left to approve; 12 when
    declined, or without a terminal and without --yes (as `apply`).
    """
    settings = load_config(config)
    engine = open_syncer(settings, None)
    try:
        options = _approval(engine, settings, run_id, yes)
    except BaseException:
        engine.close()
        raise
    run_apply(engine, options)


def _approval(engine: Syncer, settings: Config, run_id: int, yes: bool) -> ApplyRequest:
    """Return the apply that approves run `run_id`; raise UsageError for an unknown run or
    a plan not stored, SyncdError for an apply with nothing still blocked."""
    dry = queries.run_is_dry(engine.ledger.db, run_id)
    if dry is None:
        raise UsageError(f"approve {run_id}: no such run in the ledger (see `syncd history`)")
    if dry:
        return _stored_plan(settings, run_id, yes)
    released = queries.blocked_in_run(engine.ledger.db, run_id)
    if not released:
        raise UsageError(f"run {run_id} has no removals still blocked: nothing to approve")
    console.print(f"releasing {len(released)} removal(s) blocked in run {run_id}")
    return ApplyRequest(ApplyOptions(trigger="approve", released=released), yes=yes)


def _stored_plan(settings: Config, run_id: int, yes: bool) -> ApplyRequest:
    """Return the apply options of plan run `run_id` as the plan-only daemon stored it;
    raise UsageError if no report of it is stored."""
    path = report_paths(reports_directory(settings), run_id).json_path
    if not path.exists():
        raise UsageError(
            f"run {run_id} is a dry run without a stored plan ({path} does not exist): "
            "only the plan-only daemon's last [daemon] reports_keep plans can be approved"
        )
    saved, released = load_saved_plan(path).approving_blocked()
    console.print(f"applying the plan of run {run_id}: {path}", markup=False, highlight=False)
    return ApplyRequest(ApplyOptions(trigger="approve", released=released, saved=saved), yes=yes)


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
            table.add_row(*(Text(cell) for cell in (*head, row.outcome, field, before, after)))
            head = ["", "", "", ""]
        if row.error:
            table.add_row("", "", "", "", "error", "", "", Text(row.error))
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
