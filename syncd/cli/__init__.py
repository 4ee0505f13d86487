"""The `syncd` command line. Errors become exit codes here, in one place.

Exit codes: 0 success; 1 `plan --check` found pending changes (`unlock`: refused or
declined); 2 an unexpected error;
3 configuration; 4 source refused or unreadable; 5 ledger; 6 saved plan stale;
7 actions blocked by a safety cap; 8 target failures or deferred actions; 9 source
records skipped. `apply` gives the first of 8, 7, 9; `plan --check` 9 before 1
(see syncd.errors).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from syncd.cli import admin, backfill, commands, demo, device, emulate, events, unlock
from syncd.cli import daemon as daemon_cli
from syncd.cli import probe as probe_cli
from syncd.errors import SyncdError, exit_code

app = typer.Typer(
    name="syncd",
    help="Keep door-access systems (EF-45, CLUe) in step with HR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)
backfill.register(app)
admin.register(app)
device.register(app)
daemon_cli.register(app)
events.register(app)
unlock.register(app)
probe_cli.register(app)
app.command("demo")(demo.demo)
app.add_typer(emulate.app, name="emulate")

_err = Console(stderr=True)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map syncd's errors to their exit codes with a one-line message."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of raising.
        code = app(args=argv, standalone_mode=False)
    except SyncdError as error:
        _err.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(exit_code(error))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        _err.print("aborted")
        sys.exit(2)
    except Exception as error:  # click's usage errors carry their own exit code
        code = getattr(error, "exit_code", None)
        if isinstance(code, int):
            show = getattr(error, "show", None)
            if callable(show):
                show()
            sys.exit(code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
