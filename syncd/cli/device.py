"""`syncd device-clock`: set every EF-45 terminal's clock from this host's clock."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from syncd.cli.commands import ConfigOption, TargetOption
from syncd.cli.output import make_console
from syncd.config import load_config
from syncd.engine.clock import set_device_clocks
from syncd.engine.run import Syncer
from syncd.errors import TargetError
from syncd.ledger.runlock import run_lock

console = make_console()


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("device-clock")(device_clock)


def device_clock(
    config: ConfigOption = None,
    target: TargetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print failures only.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Set each EF-45 terminal's clock to the host's time in the terminal's time_zone.

    Holds the run lock (exit 5 while another syncd process holds it). Exit 8 if any
    terminal could not be set (the others are set all the same).
    """
    only = frozenset(target) if target else None
    engine = Syncer.from_config(load_config(config), only_targets=only)
    try:
        with run_lock(engine.ledger.db, wait_s=wait):
            results = set_device_clocks(engine)
    finally:
        engine.close()
    failed = [r for r in results.values() if not r.ok]
    for result in sorted(results.values(), key=lambda r: r.target):
        if result.ok and not quiet:
            shown = result.set_to.isoformat(sep=" ") if result.set_to else ""
            console.print(f"{result.target}: clock set to {shown}")
        elif not result.ok:
            console.print(Text.assemble((f"{result.target}: not set:", "red"), f" {result.error}"))
    if failed:
        raise TargetError(f"{len(failed)} terminal clock(s) not set")
