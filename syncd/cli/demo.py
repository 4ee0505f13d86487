"""`syncd demo`: the main job end to end on the embedded default, in a temporary directory.

Three emulated EF-45 terminals on loopback, a sample HR export of 200 people, a SQLite
ledger; first run (all creates) shown as a dry run and applied, then one hire, one
termination, one card change and one name change, shown and applied; finally a check
that every terminal holds exactly what the HR file says.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from syncd.cli.progress import TargetBars
from syncd.config import load_config, shipped_path
from syncd.emulators.ef45 import create_ef45_app
from syncd.emulators.ef45_behaviour import EF45_PROFILES
from syncd.emulators.ef45_state import Ef45State
from syncd.emulators.hr_sample import apply_demo_changes, sample_rows, write_people_csv
from syncd.emulators.server import EmulatorServer
from syncd.engine import report
from syncd.engine.run import Engine
from syncd.errors import SyncdError
from syncd.ledger import migrate
from syncd.ledger.store import create_ledger_engine

TERMINALS = ("lobby", "lab", "garage")
console = Console()


def write_demo_config(workdir: Path, urls: dict[str, str]) -> Path:
    """Write the demo's syncd.toml into `workdir`; return its path."""
    mapping = shipped_path("mappings", "hr-csv.toml")
    lines = [
        "[ledger]",
        'url = "sqlite:///ledger.db"',
        "",
        "[apply]",
        "retry_initial_s = 0.05",
        "next_attempt_base_s = 0",
        "",
        "[sources.hr]",
        'type = "csv"',
        'path = "people.csv"',
        f'mapping = "{mapping}"',
        "",
    ]
    for name, url in urls.items():
        lines += [
            f"[targets.{name}]",
            'type = "ef45"',
            f'url = "{url}"',
            'time_zone = "Europe/Berlin"',
            "",
        ]
    path = workdir / "syncd.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def demo(
    people: Annotated[int, typer.Option(help="How many people in the sample HR file.")] = 200,
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the files here instead of a temporary directory.")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Emulated EF-45 behaviour: device (default) or lenient.")
    ] = "device",
) -> None:
    """Run syncd end to end against three emulated EF-45 terminals."""
    if profile not in EF45_PROFILES:
        raise typer.BadParameter(f"profile must be one of {', '.join(EF45_PROFILES)}")
    started = time.monotonic()
    with ExitStack() as stack:
        directory = workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="syncd-demo-"))
        )
        directory.mkdir(parents=True, exist_ok=True)
        states = {name: Ef45State(behaviour=EF45_PROFILES[profile]) for name in TERMINALS}
        servers = {
            n: stack.enter_context(EmulatorServer(create_ef45_app(s))) for n, s in states.items()
        }
        console.print(
            Panel.fit(
                Text(
                    f"syncd demo in {directory}\n"
                    + "\n".join(f"EF-45 '{n}' at {s.url}" for n, s in servers.items())
                )
            )
        )
        config_path = write_demo_config(directory, {n: s.url for n, s in servers.items()})
        csv_path = directory / "people.csv"
        write_people_csv(csv_path, sample_rows(people))
        _upgrade(config_path)
        applied = _round(config_path, "Run 1: dry run of the first sync (all creates)")
        changes = apply_demo_changes(csv_path)
        console.print(
            f"\nHR changes: hired {changes.hired}, terminated {changes.terminated}, "
            f"new card for {changes.card_changed}, renamed {changes.renamed}",
            markup=False,
        )
        applied += _round(config_path, "Run 2: dry run after the HR changes")
        _verify(config_path, states)
        elapsed = time.monotonic() - started
        console.print(
            Panel.fit(
                Text(
                    f"people in HR: {people + 1}\nterminals: {len(TERMINALS)}\n"
                    f"actions applied: {applied}\ntime taken: {elapsed:.1f} s"
                ),
                title="syncd demo: done",
            )
        )


def _upgrade(config_path: Path) -> None:
    engine = create_ledger_engine(load_config(config_path).ledger.url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def _round(config_path: Path, title: str) -> int:
    engine = Engine.from_config(load_config(config_path))
    try:
        reading = engine.read()
        dry = engine.plan(reading)
        console.print()
        report.print_text(console, dry, reading.problems, limit=5, title=title)
        console.print("\nApplying …")
        with TargetBars(console) as bars:
            _, result, run_id = engine.apply(trigger="demo", progress=bars)
        if result.count("failed"):
            raise SyncdError(f"demo run {run_id}: {result.count('failed')} action(s) failed")
        console.print(f"run {run_id}: {result.count('applied')} actions applied", markup=False)
        return result.count("applied")
    finally:
        engine.close()


def _verify(config_path: Path, states: dict[str, Ef45State]) -> None:
    engine = Engine.from_config(load_config(config_path))
    try:
        reading = engine.read()
        plan = engine.plan(reading)
    finally:
        engine.close()
    if not plan.in_step:
        raise SyncdError("demo: a third plan still has changes; syncd did not converge")
    expected = len(reading.desired.people)
    for name, state in states.items():
        held = len(state.subjects)
        if held != expected:
            raise SyncdError(f"demo: terminal {name} holds {held} users, HR has {expected}")
    console.print(
        f"\nConverged: a new plan is empty and each terminal holds all {expected} people.",
        markup=False,
    )
