"""`syncd status` and `syncd history`: tables read from the ledger, no source or target."""

from __future__ import annotations

from typing import Annotated

import typer

from syncd.cli import tables
from syncd.cli.commands import ConfigOption, console
from syncd.config import load_config
from syncd.ledger import migrate, queries
from syncd.ledger.store import create_ledger_engine


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("status")(status)
    app.command("history")(history)


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
    everything: Annotated[
        bool, typer.Option("--all", help="Show the dry runs (plan) too, not only applies.")
    ] = False,
) -> None:
    """The last runs that acted (apply, backfill) with their counts and outcome; --all adds
    the dry runs."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        migrate.check_schema(engine)
        console.print(tables.history_table(queries.history(engine, limit, dry_runs=everything)))
    finally:
        engine.dispose()
