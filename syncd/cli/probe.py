"""`syncd probe TARGET`: check on a real terminal or CLUe place what syncd assumes.

Run once by an installer (and after a firmware update). Safe on a production device:
see `syncd.targets.ef45.probe` and `syncd.targets.clue.probe` for what each writes (a
reserved probe user, always removed). Exit 0 when every assumption holds, 10 when the
device differs (the table names the keys to set), 8 when the target could not be probed
or the probe could not remove its user.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from syncd.cli.commands import ConfigOption
from syncd.cli.output import make_console
from syncd.config import load_config
from syncd.engine.run import Syncer
from syncd.errors import AssumptionsDiffer, ConfigError, TargetError
from syncd.ledger.runlock import run_lock
from syncd.targets.probing import Probeable, ProbeReport

console = make_console()
_MARKS = {
    True: Text("holds", style="green"),
    False: Text("differs", style="red"),
    None: Text("unchecked", style="yellow"),
}


class ProbeFormat(StrEnum):
    """Output formats of `syncd probe`."""

    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    """Add `syncd probe` to `app`."""
    app.command("probe")(probe)


def probe(
    target: Annotated[str, typer.Argument(help="The target to probe, as named in syncd.toml.")],
    config: ConfigOption = None,
    output: Annotated[
        ProbeFormat, typer.Option("--format", "-f", help="text (a table) or json.")
    ] = ProbeFormat.TEXT,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Check every assumption syncd makes about TARGET on the real device, safely.

    Creates and always removes a reserved probe user; changes nothing else. Exit 0 when
    every assumption holds, 10 when the device differs (set the keys shown), 8 when the
    target could not be probed or the probe user could not be removed, 5 while another
    syncd process holds the run lock.
    """
    engine = Syncer.from_config(load_config(config), only_targets=frozenset({target}))
    try:
        chosen = engine.targets[target]
        if not isinstance(chosen, Probeable):
            raise ConfigError(f"target {target}: kind {chosen.kind} cannot be probed")
        with run_lock(engine.ledger.db, wait_s=wait):
            report = asyncio.run(chosen.probe())
    finally:
        engine.close()
    if output is ProbeFormat.JSON:
        print(json.dumps(_as_json(report), indent=2))
    else:
        console.print(_table(report))
    if report.cleanup_error is not None:
        raise TargetError(f"{target}: the probe could not clean up: {report.cleanup_error}")
    if not report.all_hold:
        differing = sum(1 for f in report.findings if f.holds is False)
        raise AssumptionsDiffer(f"{target}: {differing} assumption(s) differ; set the keys shown")


def _as_json(report: ProbeReport) -> dict[str, object]:
    return {
        "schema": "syncd.probe/1",
        "target": report.target,
        "kind": report.kind,
        "all_hold": report.all_hold,
        "cleanup_error": report.cleanup_error,
        "findings": [asdict(finding) for finding in report.findings],
    }


def _table(report: ProbeReport) -> Table:
    table = Table(title=f"probe of {report.target} ({report.kind})", title_justify="left")
    for name in ("assumption", "observed", "", "syncd does", "set"):
        table.add_column(name, overflow="fold")
    for finding in report.findings:
        table.add_row(
            finding.assumption,
            finding.observed,
            _MARKS[finding.holds],
            finding.syncd_does,
            finding.config if finding.holds is False else "",
        )
    return table
