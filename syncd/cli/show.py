"""`syncd show PLAN.json`: render a saved report again (text, HTML or JSON).

Reads a report `syncd plan --format json` wrote (schema `syncd.plan/1` or `/2`, saved
plan or not) and renders it with the same functions as `plan`: nothing is read from the
sources, the ledger or the targets. A path that cannot be read, or a file that is not a
syncd report, is a usage error (exit 2) naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from syncd.cli.commands import Format, VerboseOption, write_report
from syncd.engine.report import SCHEMAS
from syncd.engine.report_formats import render
from syncd.errors import UsageError


def register(app: typer.Typer) -> None:
    """Add `show` to `app`."""
    app.command("show")(show)


def show(
    plan_file: Annotated[Path, typer.Argument(help="A report saved by `plan --format json`.")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.TEXT,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here.")
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Render a saved plan (`syncd plan --format json --output PLAN.json`) again."""
    document = load_report(plan_file)
    write_report(render(document, fmt.value, verbose=verbose), output)


def load_report(path: Path) -> dict[str, Any]:
    """Return the report document in `path`; raise UsageError naming the file if it cannot
    be read or is not a syncd plan report."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a syncd plan report (not JSON: {exc})") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: not a syncd plan report (not a JSON object)")
    schema = document.get("schema")
    if schema not in SCHEMAS:
        raise UsageError(
            f"{path}: not a syncd plan report (schema {schema!r}; expected one of "
            f"{', '.join(SCHEMAS)})"
        )
    if not isinstance(document.get("summary"), dict) or "in_step" not in document:
        raise UsageError(f"{path}: not a complete syncd plan report (summary or in_step missing)")
    report: dict[str, Any] = document
    return report
