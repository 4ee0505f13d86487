"""`syncd db upgrade`, `plan`, `apply`: thin shells over the engine (`status` and `history`
are in syncd.cli.ledger_views, so that `plan` does not import what only they need)."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from syncd.cli.output import make_console
from syncd.config import CONFIG_ENV, Config, load_config
from syncd.engine import narrow, report, stopping
from syncd.engine.report_formats import render
from syncd.engine.run import ApplyOptions, Reading, Syncer
from syncd.engine.saved import load_saved_plan
from syncd.errors import (
    Cancelled,
    ConfigError,
    Interrupted,
    SafetyBlocked,
    SourceProblems,
    TargetError,
    UsageError,
)
from syncd.ledger import migrate
from syncd.ledger.events import last_access
from syncd.ledger.pinkey import seal_clear_pins
from syncd.ledger.store import create_ledger_engine
from syncd.model import ActionOutcome, Plan
from syncd.sources.base import SourceProblem

# readable=False: load_config reports a file it cannot read as a configuration error
# (exit 3), as for $SYNCD_CONFIG, instead of click's usage error (exit 2).
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="syncd.toml (default: $SYNCD_CONFIG or ./syncd.toml)",
        readable=False,
    ),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", metavar="TARGET", help="Only this target (repeatable)."),
]
ShrinkOption = Annotated[
    bool, typer.Option("--allow-shrink", help="Accept a source that shrank past the limit.")
]
FullOption = Annotated[
    bool,
    typer.Option("--full", help="Read every source in full (finds deletions) instead of deciding."),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Text: add each device field that changes.")
]
DeepOption = Annotated[
    bool,
    typer.Option(
        "--deep", help="Observe the terminals first: repair drift, report orphans (slower)."
    ),
]
console = make_console()
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)


class Format(StrEnum):
    """Report formats of `syncd plan`."""

    TEXT = "text"
    JSON = "json"
    HTML = "html"


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.add_typer(db_app, name="db")
    app.command("plan")(plan)
    app.command("apply")(apply)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the ledger's tables to the newest schema, then encrypt any PIN an
    older syncd left in clear (no key is needed when there is none). Without a usable PIN
    key here (a credential only the daemon gets, say), say so: the next apply seals them."""
    settings = load_config(config)
    engine = create_ledger_engine(settings.ledger.url)
    sealed = 0
    try:
        before, after = migrate.upgrade(engine)
        try:
            sealed = seal_clear_pins(settings, engine)
        except ConfigError as exc:
            typer.echo(
                f"warning: PINs an older syncd left in clear are not encrypted yet: {exc}. "
                "The next apply encrypts them; or run `syncd db upgrade` where the key is "
                "readable.",
                err=True,
            )
    finally:
        engine.dispose()
    shown = before or "empty"
    console.print(
        f"ledger at {after} (was {shown})" if before != after else f"ledger already at {after}",
        markup=False,
    )
    if sealed:
        console.print(f"encrypted the PINs left in clear in {sealed} row(s)", markup=False)


def open_syncer(settings: Config, targets: list[str] | None) -> Syncer:
    """Return an Syncer for `settings`, limited to `targets` when given."""
    only = frozenset(targets) if targets else None
    if isinstance(stop := stopping.current(), stopping.Stop):
        stop.limit_s = settings.daemon.stop_timeout_s  # Ctrl-C: leave by then (cli.main)
    return Syncer.from_config(settings, only_targets=only)


def plan(
    config: ConfigOption = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.TEXT,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Exit 9 when source records were skipped, else 1 when changes pend."
        ),
    ] = False,
    target: TargetOption = None,
    limit: Annotated[int, typer.Option(help="People shown in text (0: all).")] = 20,
    allow_shrink: ShrinkOption = False,
    full: FullOption = False,
    person: Annotated[str | None, typer.Option(help="Only this person's actions.")] = None,
    deep: DeepOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show what apply would change, person by person (a dry run: no target is touched).

    `--format json --output plan.json` saves a plan that `apply --plan plan.json` applies
    exactly, or refuses if the source or the ledger moved meanwhile; `syncd show
    plan.json` renders it again (text, HTML).
    """
    engine = open_syncer(load_config(config), target)
    try:
        reading = engine.read(allow_shrink=allow_shrink, full=True if full else None)
        if person:
            _check_person(reading, engine, person)
        result = engine.plan(reading, deep=deep)
        engine.record_dry_run(result, problems=reading.problems)
        fingerprint = engine.fingerprint(reading) if fmt is not Format.TEXT else None
        shown = _for_person(engine, result, person) if person else result
        context = engine.report_context(reading, shown, config_file(config))
    finally:
        engine.close()
    listed = limit if fmt is Format.TEXT else 0  # JSON and HTML describe everyone
    document = report.plan_to_json(shown, reading.problems, fingerprint, context, listed)
    write_report(render(document, fmt.value, verbose=verbose, limit=limit), output)
    if result.unobserved:
        # The deep look was asked for and did not happen: the plan is not the whole truth.
        raise TargetError(unobserved_line(result))
    if check and reading.problems:
        # Before "pending": the plan leaves these records out, so it is not the whole story.
        raise SourceProblems(report.problems_line(reading.problems))
    if check and not shown.in_step:
        raise typer.Exit(1)


def unobserved_line(plan: Plan) -> str:
    """Return the error line of a deep look that failed at some targets."""
    names = ", ".join(sorted(plan.unobserved))
    return (
        f"the deep look failed at {names}: planned from the ledger only, so what the "
        "terminal holds was not checked (see the notes above)"
    )


def config_file(config: Path | None) -> str:
    """Return the absolute path of the config file `load_config(config)` reads."""
    return str(Path(config or os.environ.get(CONFIG_ENV) or "syncd.toml").resolve())


def _check_person(reading: Reading, engine: Syncer, person: str) -> None:
    """Raise UsageError unless a source or the ledger knows `person` (a typo otherwise
    reads as "in step")."""
    desired = reading.desired
    if person in desired.people or person in desired.gone:
        return
    if person in engine.ledger.load_people():
        return
    raise UsageError(f"unknown person {person!r}: no source and no ledger record has this key")


def _for_person(engine: Syncer, result: Plan, person: str) -> Plan:
    """Return `result` narrowed to one person, with their last access as a note."""
    when = last_access(engine.ledger.db, person)
    shown = when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "none recorded"
    narrowed = narrow.only_person(result, person)
    return dataclasses.replace(narrowed, notes=(*narrowed.notes, f"{person}: last access {shown}"))


def write_report(text: str, output: Path | None) -> None:
    """Write a rendered report to `output`, or to standard output (as it is: no markup,
    no wrapping)."""
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


@dataclass(frozen=True)
class ApplyRequest:
    """What an administrator asked of one apply: the run's options, and the CLI's own
    flags (`yes`: no question; `limit`: actions shown per target)."""

    run: ApplyOptions = field(default_factory=ApplyOptions)
    yes: bool = False
    limit: int = 20


def apply(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    target: TargetOption = None,
    allow_shrink: ShrinkOption = False,
    full: FullOption = False,
    allow_deletes: Annotated[
        int | None, typer.Option(help="Release up to N blocked removals for this run.")
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
    limit: Annotated[int, typer.Option(help="Actions shown per target (0: all).")] = 20,
    saved_plan: Annotated[
        Path | None, typer.Option("--plan", help="Apply exactly this saved JSON plan.")
    ] = None,
    deep: DeepOption = False,
) -> None:
    """Bring every target in step: show the plan, then apply it with a progress bar."""
    saved = load_saved_plan(saved_plan) if saved_plan else None
    run = ApplyOptions(
        allow_shrink=allow_shrink,
        allow_deletes=allow_deletes,
        wait_lock_s=wait,
        full=True if full else None,
        saved=saved,
        deep=deep,
    )
    run_apply(open_syncer(load_config(config), target), ApplyRequest(run, yes, limit))


def run_apply(engine: Syncer, options: ApplyRequest) -> None:
    """Apply with confirmation and progress bars; raise for failures, deferred actions,
    blocked removals and skipped source records, in that order (see syncd.errors).

    The question comes before any progress bar is drawn (a live display would erase
    it). Declined, or not asked because there is no terminal and no `--yes`: the run is
    recorded as cancelled and Cancelled (exit 12) raised. Closes `engine` on the way out.
    """
    refusal: list[str] = []

    def confirm(result: Plan) -> bool:
        reading = engine.applied  # what this apply read: the people's names and values
        context = engine.report_context(reading, result, title="Plan") if reading else None
        report.print_text(
            console, result, _skipped(engine), limit=options.limit, title="Plan", context=context
        )
        if not result.runnable() or options.yes:
            return True
        why = ask_to_apply()
        if why is not None:
            refusal.append(why)
        return why is None

    try:
        from syncd.cli.progress import TargetBars  # rich's live display: apply only

        with TargetBars(console) as bars:
            result, outcome, run_id = engine.apply(options.run, progress=bars, before_apply=confirm)
            for name in outcome.errors:
                bars.fail(name)
    finally:
        engine.close()
    if refusal:
        raise Cancelled(f"{refusal[0]} (run {run_id} recorded as cancelled)")
    applied, failed = outcome.count(ActionOutcome.APPLIED), outcome.count(ActionOutcome.FAILED)
    deferred = sum(s.deferred for s in result.summaries)
    for name, error in sorted(outcome.errors.items()):
        console.print(Text.assemble((name, "red"), f": {error}"))
    console.print(
        f"run {run_id}: {applied} applied, {failed} failed, {result.blocked} blocked, "
        f"{deferred} deferred, {len(_skipped(engine))} source record(s) skipped",
        markup=False,
    )
    if outcome.stopped:
        raise Interrupted(
            f"run {run_id} interrupted ({stopping.reason_of(stopping.current())}); what it "
            "did not do is planned again by the next run"
        )
    if failed or deferred:
        raise TargetError(
            f"{failed} action(s) failed, {deferred} deferred (a failed record waiting for its "
            "retry time, or a quarantined target); they are retried on a later run"
        )
    if result.unobserved:
        raise TargetError(unobserved_line(result))
    if result.blocked:
        raise SafetyBlocked(blocked_message(result, run_id, options.run.allow_deletes))
    if problems := _skipped(engine):
        raise SourceProblems(report.problems_line(problems))


def ask_to_apply() -> str | None:
    """Ask `Apply these changes? [y/N]` on the terminal; return None for yes, else why
    not ("Apply cancelled.", or no terminal to ask on)."""
    if not sys.stdin.isatty():
        return "not applied: stdin is not a terminal, so nobody can answer; pass --yes to apply"
    if typer.confirm("Apply these changes?"):
        return None
    return "Apply cancelled."


def blocked_message(result: Plan, run_id: int, allow_deletes: int | None) -> str:
    """Return what to do about the removals `result` blocked: approve the run, or the N of
    `--allow-deletes N` that releases them all (a target's removals go all or none)."""
    needed = max(s.blocked for s in result.summaries)
    text = (
        f"{result.blocked} removal(s) blocked by the safety cap: review them, then "
        f"`syncd approve {run_id}` or `syncd apply --allow-deletes {needed}`"
    )
    if allow_deletes is not None and allow_deletes < needed:
        text += (
            f" (--allow-deletes {allow_deletes} is below the {needed} removals of one "
            "target: a target's removals are released all together or not at all)"
        )
    return text


def _skipped(engine: Syncer) -> tuple[SourceProblem, ...]:
    """Return the defective source records of the reading the engine's apply acted on."""
    return engine.applied.problems if engine.applied is not None else ()
