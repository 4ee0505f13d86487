"""`syncd demo`: the whole product end to end on emulators, in a working directory.

Three emulated EF-45 terminals and one emulated CLUe place on loopback, a sample HR
export, a SQLite ledger with a template key; then, each step printed:

1. the first sync (all creates) shown as a dry run and applied;
2. HR changes (one hire, a card, a name, and a wave of leavers larger than the demo's
   `[safety] max_deletes`): the dry run, written as the HTML report the user is told to
   open, and applied — the removals are blocked on every target, the rest goes ahead;
3. `syncd approve RUN --yes`, through the very code the CLI runs, releases them;
4. a fake iris enrollment at the lobby terminal (`ef45_enroll`), `backfill` reads it into
   the ledger and the next apply fans it out to the other terminals;
5. the check that a new plan is empty, every target holds everyone and the enrollment
   reached every EF-45; then where the report and the ledger are.

Without `--workdir` the files go to a new temporary directory that is kept (the report,
the ledger for `syncd history` / `syncd audit`), and its path is printed.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.text import Text

from syncd.cli.admin import approve
from syncd.cli.output import make_console
from syncd.cli.progress import TargetBars
from syncd.config import load_config, shipped_path
from syncd.emulators.clue import create_clue_app
from syncd.emulators.clue_state import ClueState
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_behaviour import EF45_PROFILES
from syncd.emulators.ef45_enroll import enroll_fake
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import (
    apply_demo_changes,
    employee_id,
    sample_rows,
    terminate,
    write_people_csv,
)
from syncd.emulators.server import EmulatorServer
from syncd.engine import report
from syncd.engine.backfill import backfill
from syncd.engine.report_html import render_html
from syncd.engine.run import ApplyOptions, Syncer
from syncd.errors import SyncdError
from syncd.ledger import migrate
from syncd.ledger.crypto import generate_key_text
from syncd.ledger.store import create_ledger_engine
from syncd.model import ActionOutcome

TERMINALS = ("lobby", "lab", "garage")
CLUE_PLACE = "hq"
CLUE_PLACE_ID = 178
MAX_DELETES = 2
"""The demo's `[safety] max_deletes`: the second HR change has more leavers than this."""
LEAVERS = 3
REPORT_NAME = "report.html"
console = make_console()


def _say(text: str) -> None:
    """Print the demo's own words as they are (no Rich markup: brackets survive)."""
    console.print(text, markup=False, highlight=False)


def write_demo_config(workdir: Path, urls: dict[str, str], clue_url: str) -> Path:
    """Write the demo's syncd.toml into `workdir` (EF-45 terminals at `urls`, the CLUe
    place at `clue_url`, keys in `clue.key` and `templates.key`); return its path."""
    mapping = shipped_path("mappings", "hr-csv.toml")
    lines = [
        "[ledger]",
        'url = "sqlite:///ledger.db"',
        "",
        "[safety]",
        f"max_deletes = {MAX_DELETES}",
        "",
        "[apply]",
        "retry_initial_s = 0.05",
        "next_attempt_base_s = 0",
        "",
        "[templates]",
        f'key = {{ file = "{workdir / "templates.key"}" }}',
        "",
        "[sources.hr]",
        'type = "csv"',
        'path = "people.csv"',
        f'mapping = "{mapping}"',
        "",
    ]
    for name, url in urls.items():
        lines += [f"[targets.{name}]", 'type = "ef45"', f'url = "{url}"']
        lines += ['time_zone = "Europe/Berlin"', ""]
    lines += [
        f"[targets.{CLUE_PLACE}]",
        'type = "clue"',
        f'url = "{clue_url}"',
        f"place_id = {CLUE_PLACE_ID}",
        f'api_key = {{ file = "{workdir / "clue.key"}" }}',
        "min_interval_ms = 0                     # the emulator sets no pace",
        'time_zone = "Europe/Berlin"',
        "",
    ]
    path = workdir / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _write_secret(path: Path, text: str) -> None:
    """Write a private (0600) secret file: syncd refuses one group or others may read."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add `syncd demo` to `app`."""
    app.command("demo")(demo)


def demo(
    people: Annotated[int, typer.Option(help="How many people in the sample HR file.")] = 200,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Put the files here (default: a new temporary directory, kept)."),
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Emulated EF-45 behaviour: device (default) or lenient.")
    ] = "device",
) -> None:
    """Run syncd end to end against three emulated EF-45 terminals and one CLUe place."""
    if profile not in EF45_PROFILES:
        raise typer.BadParameter(f"profile must be one of {', '.join(EF45_PROFILES)}")
    if people < LEAVERS + 4:
        raise typer.BadParameter(f"--people: at least {LEAVERS + 4}")
    started = time.monotonic()
    directory = (workdir or Path(tempfile.mkdtemp(prefix="syncd-demo-"))).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    api_key = secrets.token_urlsafe(24)
    _write_secret(directory / "clue.key", api_key)
    _write_secret(directory / "templates.key", generate_key_text())
    with ExitStack() as stack:
        states = {name: Ef45State(behaviour=EF45_PROFILES[profile]) for name in TERMINALS}
        servers = {
            n: stack.enter_context(EmulatorServer(create_ef45_app(s))) for n, s in states.items()
        }
        place = ClueState(place_id=CLUE_PLACE_ID, api_key=api_key)
        clue_server = stack.enter_context(EmulatorServer(create_clue_app(place)))
        _say_setup(directory, servers, clue_server.url)
        config_path = write_demo_config(
            directory, {n: s.url for n, s in servers.items()}, clue_server.url
        )
        csv_path = directory / "people.csv"
        write_people_csv(csv_path, sample_rows(people))
        _upgrade(config_path)
        _round(config_path, "Run 1: dry run of the first sync (all creates)")
        _hr_changes(csv_path, people)
        report_path = directory / REPORT_NAME
        run_id, blocked = _round(config_path, "Run 2: dry run after the HR changes", report_path)
        _approve(config_path, run_id, blocked)
        enrolled = _enroll_and_fan_out(config_path, states)
        _verify(config_path, states, place, enrolled)
        elapsed = time.monotonic() - started
    _summary(config_path, people, report_path, elapsed)


def _say_setup(directory: Path, servers: dict[str, EmulatorServer], clue_url: str) -> None:
    lines = [f"syncd demo in {directory}"]
    lines += [f"EF-45 '{n}' at {s.url}" for n, s in servers.items()]
    lines.append(f"CLUe place '{CLUE_PLACE}' ({CLUE_PLACE_ID}) at {clue_url}")
    console.print(Panel.fit(Text("\n".join(lines))))


def _hr_changes(csv_path: Path, people: int) -> None:
    """Change the HR file: the four usual changes plus more leavers than `max_deletes`."""
    changes = apply_demo_changes(csv_path)
    more = [employee_id(people - index) for index in range(LEAVERS - 1)]
    terminate(csv_path, more)
    leavers = ", ".join([changes.terminated, *more])
    _say(
        f"\nHR changes: hired {changes.hired}, new card for {changes.card_changed}, renamed "
        f"{changes.renamed}, terminated {leavers} — {LEAVERS} leavers, more than the "
        f"demo's [safety] max_deletes = {MAX_DELETES}"
    )


def _upgrade(config_path: Path) -> None:
    engine = create_ledger_engine(load_config(config_path).ledger.url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def _round(config_path: Path, title: str, report_path: Path | None = None) -> tuple[int, int]:
    """Show the dry run (and write it as HTML to `report_path`), then apply; return the
    run id and how many removals the safety caps blocked. Raise if an action failed."""
    engine = Syncer.from_config(load_config(config_path))
    try:
        reading = engine.read()
        dry = engine.plan(reading)
        console.print()
        context = engine.report_context(reading, dry, str(config_path), title)
        report.print_text(console, dry, reading.problems, limit=5, title=title, context=context)
        if report_path is not None:
            _write_report(report_path, report.plan_to_json(dry, reading.problems, context=context))
        _say("\nApplying …")
        with TargetBars(console) as bars:
            done, result, run_id = engine.apply(ApplyOptions(trigger="demo"), progress=bars)
    finally:
        engine.close()
    failed, applied = result.count(ActionOutcome.FAILED), result.count(ActionOutcome.APPLIED)
    if failed:
        raise SyncdError(f"demo run {run_id}: {failed} action(s) failed")
    _say(
        f"run {run_id}: {applied} actions applied, {done.blocked} removal(s) "
        "blocked by the safety cap"
    )
    return run_id, done.blocked


def _write_report(path: Path, document: dict[str, Any]) -> None:
    """Write the dry run as the HTML report `syncd plan --format html` writes."""
    path.write_text(render_html(document), encoding="utf-8")
    _say(f"\nHTML report of this dry run: {path} (open it in a browser)")


def _approve(config_path: Path, run_id: int, blocked: int) -> None:
    """Release the removals run `run_id` blocked, as `syncd approve RUN_ID --yes` does."""
    if not blocked:
        raise SyncdError(f"demo run {run_id}: the leavers were not blocked by max_deletes")
    _say(
        f"\nAn administrator reviews the blocked removals and approves them: "
        f"syncd approve {run_id} --yes"
    )
    approve(run_id, config=config_path, yes=True)


def _enroll_and_fan_out(config_path: Path, states: dict[str, Ef45State]) -> str:
    """Fake an iris enrollment at the first terminal, back-fill it and apply the fan-out;
    return the enrolled person's key."""
    first = TERMINALS[0]
    key = employee_id(1)
    enroll_fake(states[first], key)
    _say(
        f"\n{key} enrolls both irises at '{first}' (syncd emulate ef45-enroll does this "
        "with any emulated terminal); syncd backfill reads them into the ledger, encrypted,"
        " and the next apply fans them out:"
    )
    engine = Syncer.from_config(load_config(config_path))
    try:
        result = backfill(engine, trigger="demo")
        new = sum(counts["new"] for counts in result.per_target.values())
        _say(f"backfill run {result.run_id}: {new} new template(s) in the ledger")
        with TargetBars(console) as bars:
            _, applied, run_id = engine.apply(ApplyOptions(trigger="demo"), progress=bars)
    finally:
        engine.close()
    if result.errors or applied.count(ActionOutcome.FAILED):
        raise SyncdError(f"demo: backfill or fan-out failed: {result.errors or applied.errors}")
    _say(
        f"run {run_id}: {applied.count(ActionOutcome.APPLIED)} update(s) sent the irises to "
        f"{', '.join(TERMINALS[1:])}"
    )
    return key


def _verify(
    config_path: Path, states: dict[str, Ef45State], place: ClueState, enrolled: str
) -> None:
    """Raise SyncdError unless a new plan is empty, every target holds everyone, and every
    EF-45 holds the enrolled person's templates."""
    engine = Syncer.from_config(load_config(config_path))
    try:
        reading = engine.read()
        plan = engine.plan(reading)
    finally:
        engine.close()
    if not plan.in_step:
        raise SyncdError("demo: a final plan still has changes; syncd did not converge")
    expected = len(reading.desired.people)
    held = {name: len(state.subjects) for name, state in states.items()}
    held[CLUE_PLACE] = len(place.auths)
    for name, count in held.items():
        if count != expected:
            raise SyncdError(f"demo: target {name} holds {count} people, HR has {expected}")
    templates = {s.subjects[enrolled].get("left_eye_template") for s in states.values()}
    if len(templates) != 1 or not templates.pop():
        raise SyncdError(f"demo: the templates of {enrolled} did not reach every terminal")
    _say(
        f"\nConverged: a new plan is empty, each of the {len(held)} targets holds all "
        f"{expected} people, and {enrolled}'s irises are on every EF-45 terminal."
    )


def _summary(config_path: Path, people: int, report_path: Path, elapsed: float) -> None:
    text = (
        f"people in HR: {people + 1}\n"
        f"targets: {len(TERMINALS)} EF-45 terminals, 1 CLUe place\n"
        f"time taken: {elapsed:.1f} s\n"
        f"HTML report: {report_path}\n"
        f"the runs, blocked and approved: syncd history --config {config_path}"
    )
    console.print(Panel.fit(Text(text), title="syncd demo: done"))
