"""The root command group of `syncd`, whose commands are imported only when used
(click's "lazily loading subcommands" pattern, on Typer's group).

Until a command is asked for, the group holds a placeholder per entry of
`syncd.cli.catalog.COMMANDS` (name and one-line help, nothing imported): enough for
`syncd --help`, the "Did you mean" hint of a mistyped command, and the README test's
list of names. Resolving a command to run it (or to print its own `--help`) imports its
module, registers that module's commands on a scratch Typer app, and replaces the
placeholders with the real click commands, which behave exactly as if registered up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from syncd.cli.catalog import COMMANDS, Entry

if TYPE_CHECKING:  # the click TyperGroup is built on (typer vendors it as typer._click)
    from typer import _click as click


class Placeholder(TyperCommand):
    """Stands for a command whose module is not imported yet: a name and its help line."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry.name, help=entry.summary)
        self.module = entry.module


class LazyGroup(TyperGroup):
    """A TyperGroup that imports a command's module the first time the command is resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for entry in COMMANDS:
            self.commands.setdefault(entry.name, Placeholder(entry))
        self._listing = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return the command `cmd_name`, importing its module unless help is being drawn
        (the listing needs only the placeholder's name and help line)."""
        command = self.commands.get(cmd_name)
        if isinstance(command, Placeholder) and not self._listing:
            self.load(command.module)
            command = self.commands.get(cmd_name)
        return command

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Draw the help from the placeholders: no command module is imported for it."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def load(self, module: str) -> None:
        """Import `module` and put the commands its `register(app)` adds in place of their
        placeholders."""
        scratch = typer.Typer()
        importlib.import_module(module).register(scratch)
        built = typer.main.get_group(scratch)
        for name, command in built.commands.items():
            self.commands[name] = command

    def load_all(self) -> None:
        """Import every command module (for tests and tools that walk the whole tree)."""
        for module in dict.fromkeys(entry.module for entry in COMMANDS):
            self.load(module)
