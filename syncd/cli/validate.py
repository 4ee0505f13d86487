"""`syncd validate [--config C] [--connect]`: check a configuration before the first run.

One line per check (`ok` / `FAIL`, what, where: `syncd.engine.checks`), printed as it is
made and never with a secret's value. Exit 0 when every check passes, else the code of
the first failing class: 3 configuration (the file, a mapping, a secret, a key), 5
ledger (unreachable, schema not current), 4 source unreachable, 8 target unreachable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from syncd.engine import checks

console = Console(highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `validate` to `app`."""
    app.command("validate")(validate)


def validate(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)"),
    ] = None,
    connect: Annotated[
        bool,
        typer.Option(
            "--connect",
            help="Also reach every source and target, read-only (no lock taken, nothing written).",
        ),
    ] = False,
) -> None:
    """Check the configuration, mappings, secrets, ledger and keys (and, with --connect,
    every source and target); exit 0 if all pass, else 3, 5, 4 or 8 (first failing class)."""
    done: list[checks.Check] = []
    for check in checks.validate(config, connect=connect):
        console.print(check.line(), markup=False)
        done.append(check)
    failed = sum(not c.ok for c in done)
    console.print(
        f"{len(done)} check(s), {failed} failed" if failed else f"all {len(done)} checks passed",
        markup=False,
    )
    code = checks.exit_code(done)
    if code:
        raise typer.Exit(code)
