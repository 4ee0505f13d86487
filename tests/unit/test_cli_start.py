"""Start-up: `syncd --help` draws its command list from syncd.cli.catalog without
importing any command module, and each command imports only what it needs.

The catalog is checked against the real commands (names, order, help line), and the help
drawn from it against the help drawn with every command loaded, so the lazy listing
cannot drift from the commands. What a start imports is read from `python -X importtime`
of a real `python -m syncd` process (not timed: the bench times it).
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import typer.main
from typer import _click

from syncd.cli import app, command_tree
from syncd.cli.catalog import COMMANDS
from syncd.cli.lazy import LazyGroup, Placeholder
from tests.bench.bench_start import tiny_site

HEAVY = ("sqlalchemy", "alembic", "httpx", "pydantic", "syncd.engine.run", "syncd.config")


def _imported(argv: list[str], **run: object) -> tuple[set[str], str]:
    """Return the modules `python -m syncd ARGV` imports, and its standard output."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "syncd", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        **run,  # type: ignore[call-overload]
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return names, done.stdout


def _loaded(names: set[str], package: str) -> list[str]:
    return sorted(n for n in names if n == package or n.startswith(package + "."))


def _first_paragraph(command: _click.Command) -> str:
    return inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]


def test_catalog_lists_the_real_commands_in_order_with_their_help_line() -> None:
    commands = command_tree().commands
    assert not [c for c in commands.values() if isinstance(c, Placeholder)]
    assert list(commands) == [entry.name for entry in COMMANDS]
    for entry in COMMANDS:
        assert entry.summary == _first_paragraph(commands[entry.name]), entry.name


def _root_help(group: _click.Command, capsys: pytest.CaptureFixture[str]) -> str:
    with _click.Context(group, info_name="syncd", terminal_width=100) as ctx:
        printed = group.get_help(ctx)
    return printed + capsys.readouterr().out  # Typer's rich help prints as it goes


def test_lazy_help_is_the_help_of_the_loaded_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    lazy = typer.main.get_group(app)
    assert isinstance(lazy, LazyGroup)
    assert all(isinstance(c, Placeholder) for c in lazy.commands.values())
    shown = _root_help(lazy, capsys)
    assert all(isinstance(c, Placeholder) for c in lazy.commands.values())  # none loaded
    assert "device-clock" in shown and "Serve emulated door systems" in shown
    assert shown == _root_help(command_tree(), capsys)


def test_help_and_version_import_no_command_module() -> None:
    names, shown = _imported(["--help"])
    assert "Commands" in shown and "history" in shown
    for heavy in (*HEAVY, "syncd.cli.commands", "syncd.engine.stopping", "asyncio"):
        assert not _loaded(names, heavy), f"syncd --help imports {heavy}"
    names, shown = _imported(["--version"])
    assert shown.startswith("syncd ")
    for heavy in (*HEAVY, "typer", "rich", "syncd.cli"):
        assert not _loaded(names, heavy), f"syncd --version imports {heavy}"


def test_a_mistyped_command_is_still_named_without_loading_any() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "hisotry"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Did you mean 'history'?" in done.stderr


def test_plan_imports_neither_alembic_nor_other_commands() -> None:
    with tiny_site() as site:
        names, shown = _imported(["plan"], cwd=site.workdir, env=site.environment)
    assert "Every target is in step" in shown
    assert "syncd.engine.run" in names  # the test reads a real plan's imports
    for unneeded in (
        "alembic",
        "syncd.emulators",
        "syncd.daemon",
        "syncd.cli.probe",
        "syncd.cli.unlock",
        "syncd.cli.demo",
        "syncd.cli.ledger_views",
        "sqlalchemy.dialects.postgresql",  # the ledger is SQLite
        "httpx",  # a plan renders records; the HTTP client loads when a terminal is opened
        "syncd.targets.ef45.client",
        "filelock",  # the run lock is an applying run's
        "rich.progress",  # apply's progress bars
    ):
        assert not _loaded(names, unneeded), f"syncd plan imports {unneeded}"


def test_status_still_refuses_an_empty_ledger() -> None:
    with tiny_site() as site:
        env = dict(site.environment)
        config = site.workdir / "syncd.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("ledger.db", "other.db"), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "syncd", "status"],
            cwd=site.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 5, done.stderr
    assert "ledger schema is at empty" in done.stderr and "syncd db upgrade" in done.stderr
