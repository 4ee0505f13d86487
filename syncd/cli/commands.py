"""`syncd db upgrade`, `plan`, `apply`, `status`, `history`: thin shells over the engine."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from syncd.cli import tables
from syncd.cli.progress import TargetBars
from syncd.config import Config, load_config
from syncd.engine import report
from syncd.engine.run import Engine
from syncd.errors import SafetyBlocked, TargetError
from syncd.ledger import migrate, queries
from syncd.ledger.store import create_ledger_engine
from syncd.model import Plan

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)"),
]
TargetOption = Annotated[
    list[str] | None, typer.Option("--target", "-t", help="Only this target (repeatable).")
]
ShrinkOption = Annotated[
    bool, typer.Option("--allow-shrink", help="Accept a source that shrank past the limit.")
]
console = Console()
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)


class Format(StrEnum):
    """Report formats of `syncd plan`."""

    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(db_app, name="db")
    app.command("plan")(plan)
    app.command("apply")(apply)
    app.command("status")(status)
    app.command("history")(history)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the ledger's tables to the newest schema."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        before, after = migrate.upgrade(engine)
    finally:
        engine.dispose()
    shown = before or "empty"
    console.print(
        f"ledger at {after} (was {shown})" if before != after else f"ledger already at {after}"
    )


def _engine(settings: Config, targets: list[str] | None) -> Engine:
    only = frozenset(targets) if targets else None
    return Engine.from_config(settings, only_targets=only)


def plan(
    config: ConfigOption = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.TEXT,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when changes are pending.")
    ] = False,
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(help="Actions shown per target in text (0: all).")] = 20,
    allow_shrink: ShrinkOption = False,
) -> None:
    """Show what apply would change (a dry run: no target is touched)."""
    engine = _engine(load_config(config), target)
    try:
        reading = engine.read(allow_shrink=allow_shrink)
        result = engine.plan(reading)
        engine.record_dry_run(result)
    finally:
        engine.close()
    _emit(result, reading.problems, fmt, output, limit)
    if check and not result.in_step:
        raise typer.Exit(1)


def _emit(result: Plan, problems: list[str], fmt: Format, output: Path | None, limit: int) -> None:
    if fmt is Format.JSON:
        text = report.render_json(result, problems)
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return
    out = Console(file=output.open("w", encoding="utf-8"), width=120) if output else console
    report.print_text(out, result, problems, limit=limit)


def apply(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    target: TargetOption = None,
    allow_shrink: ShrinkOption = False,
    allow_deletes: Annotated[
        int | None, typer.Option(help="Release up to N blocked removals for this run.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
    limit: Annotated[int, typer.Option(help="Actions shown per target (0: all).")] = 20,
) -> None:
    """Bring every target in step: show the plan, then apply it with a progress bar."""
    engine = _engine(load_config(config), target)

    def confirm(result: Plan) -> bool:
        report.print_text(console, result, limit=limit, title="Plan")
        if not result.runnable() or yes:
            return True
        if not sys.stdin.isatty():
            console.print(
                "[red]refusing to apply without --yes on a non-interactive terminal[/red]"
            )
            return False
        return typer.confirm("Apply these changes?")

    try:
        with TargetBars(console) as bars:
            result, outcome, run_id = engine.apply(
                allow_shrink=allow_shrink,
                allow_deletes=allow_deletes,
                progress=bars,
                wait_lock_s=wait,
                before_apply=confirm,
            )
    finally:
        engine.close()
    applied, failed = outcome.count("applied"), outcome.count("failed")
    console.print(f"run {run_id}: {applied} applied, {failed} failed, {result.blocked} blocked")
    if failed:
        raise TargetError(f"{failed} action(s) failed; they are retried on the next run")
    if result.blocked:
        raise SafetyBlocked(
            f"{result.blocked} removal(s) blocked by the safety cap: rerun with --allow-deletes N"
        )


def status(config: ConfigOption = None) -> None:
    """Per target: people held, pending, failed, blocked, last success."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        console.print(tables.status_table(queries.target_status(engine, sorted(settings.targets))))
    finally:
        engine.dispose()


def history(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
) -> None:
    """The last runs with their counts and outcome."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        console.print(tables.history_table(queries.history(engine, limit)))
    finally:
        engine.dispose()
