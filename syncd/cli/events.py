"""`syncd events collect` and `syncd events list`: access events from every door system."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from syncd.cli.output import make_console
from syncd.config import load_config
from syncd.engine.events import CollectReport, collect_events
from syncd.engine.run import Syncer
from syncd.errors import TargetError
from syncd.ledger import migrate
from syncd.ledger.events import StoredEvent, list_events
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import create_ledger_engine

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)"),
]
console = make_console()
events_app = typer.Typer(help="Access events collected from the targets.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `syncd events …` to `app`."""
    app.add_typer(events_app, name="events")


@events_app.command("collect")
def collect(
    config: ConfigOption = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", metavar="TARGET", help="Only this target (repeatable)."),
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Read new events from every target into the ledger; print the counts per target.

    Holds the run lock (exit 5 while another syncd process holds it): it locks terminals.
    """
    only = frozenset(target) if target else None
    engine = Syncer.from_config(load_config(config), only_targets=only)
    try:
        with run_lock(engine.ledger.db, wait_s=wait):
            report = collect_events(engine)
    finally:
        engine.close()
    console.print(_collect_table(report))
    if report.failed:
        raise TargetError(f"events of {len(report.failed)} target(s) could not be collected")


def _collect_table(report: CollectReport) -> Table:
    table = Table(title="Events collected", title_justify="left")
    for name in ("target", "read", "new", "cursor", "error"):
        table.add_column(name, justify="right" if name in ("read", "new") else "left")
    for row in report.results:
        table.add_row(row.target, str(row.read), str(row.stored), row.cursor or "", row.error or "")
    return table


@events_app.command("list")
def list_(
    config: ConfigOption = None,
    person: Annotated[str | None, typer.Option("--person", "-p", help="Person key.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this ISO time (UTC if no zone).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Only this target.")] = None,
    limit: Annotated[int, typer.Option(help="How many events, newest first.")] = 50,
) -> None:
    """Show stored events, newest first, times in UTC."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        rows = list_events(
            engine, person_key=person, since=_parse_since(since), target=target, limit=limit
        )
    finally:
        engine.dispose()
    console.print(events_table(rows))


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"--since: not an ISO date or time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def events_table(rows: list[StoredEvent]) -> Table:
    """Return one row per event: time (UTC), target, person, type, result, detail."""
    table = Table(title="Events", title_justify="left")
    for name in ("time (UTC)", "target", "person", "event", "result", "detail"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            row.target,
            row.person_key or "",
            row.event_type,
            row.result or "",
            row.detail or "",
        )
    return table
