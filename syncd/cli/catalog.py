"""Every top-level command of `syncd`: its name, the module that defines it, and the one
line `syncd --help` shows for it — the one place that lists them.

`syncd --help` is drawn from this table alone, so it starts without importing any
command module (nor the engine, SQLAlchemy, Alembic, httpx behind them); a command's
module is imported only when that command runs (`syncd.cli.lazy`). The order is the
order of the help. `tests/unit/test_cli_start.py` checks the table against the real
commands: the same names, in the same order, with the same first paragraph of help.

A module named here has `register(app)`, which adds its commands to a Typer app.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    """One top-level command: `summary` is the first paragraph of its help, exactly as
    the command's docstring (or its Typer group's `help`) has it."""

    name: str
    module: str
    summary: str


COMMANDS: tuple[Entry, ...] = (
    Entry(
        "plan",
        "syncd.cli.commands",
        "Show what apply would change, person by person (a dry run: no target is touched).",
    ),
    Entry(
        "apply",
        "syncd.cli.commands",
        "Bring every target in step: show the plan, then apply it with a progress bar.",
    ),
    Entry(
        "status",
        "syncd.cli.ledger_views",
        "Per target: people held, pending, failed, blocked, last success.",
    ),
    Entry(
        "history",
        "syncd.cli.ledger_views",
        "The last runs that acted (apply, backfill) with their counts and outcome; --all adds\n"
        "the dry runs.",
    ),
    Entry(
        "backfill",
        "syncd.cli.backfill",
        "Read the templates enrolled at EF-45 terminals into the ledger (encrypted).",
    ),
    Entry(
        "approve",
        "syncd.cli.admin",
        "Release the removals a run blocked, and apply them (with the rest of the plan); or\n"
        "apply a plan the plan-only daemon stored (RUN_ID a dry run), exactly as reviewed.",
    ),
    Entry(
        "audit",
        "syncd.cli.admin",
        "Everything that happened to one person across targets, oldest first, with the\n"
        "field values before and after each change (PINs and templates redacted).",
    ),
    Entry(
        "device-clock",
        "syncd.cli.device",
        "Set each EF-45 terminal's clock to the host's time in the terminal's time_zone.",
    ),
    Entry(
        "run",
        "syncd.cli.daemon",
        "Run the daemon: scheduled reconciles, /metrics, sd_notify (systemd Type=notify).",
    ),
    Entry(
        "trigger",
        "syncd.cli.daemon",
        "Ask the running daemon to run JOB now (queued behind a job under way).",
    ),
    Entry(
        "unlock",
        "syncd.cli.unlock",
        "Show who holds an EF-45 terminal's lock (as far as syncd knows) and release it.",
    ),
    Entry(
        "probe",
        "syncd.cli.probe",
        "Check every assumption syncd makes about TARGET on the real device, safely.",
    ),
    Entry(
        "validate",
        "syncd.cli.validate",
        "Check the configuration, mappings, secrets, ledger and keys (and, with --connect,\n"
        "every source and target); exit 0 if all pass, else 3, 5, 4 or 8 (first failing class).",
    ),
    Entry(
        "show",
        "syncd.cli.show",
        "Render a saved plan (`syncd plan --format json --output PLAN.json`) again.",
    ),
    Entry(
        "demo",
        "syncd.cli.demo",
        "Run syncd end to end against three emulated EF-45 terminals and one CLUe place.",
    ),
    Entry("db", "syncd.cli.commands", "The ledger database."),
    Entry("keys", "syncd.cli.backfill", "The key that encrypts biometric templates."),
    Entry("events", "syncd.cli.events", "Access events collected from the targets."),
    Entry(
        "emulate",
        "syncd.cli.emulate",
        "Serve emulated door systems for tests, benchmarks and demos.",
    ),
)
