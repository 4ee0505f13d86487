"""The `syncd` command line. Errors become exit codes here, in one place.

Exit codes (the README's "Exit codes" table; syncd.errors holds the exceptions):
0 success, in step; 1 `plan --check` found pending changes (`unlock`: refused without a
terminal, nothing released); 2 usage: a bad option or argument, an unknown run, person,
target or job; 3 configuration; 4 source refused or unreadable; 5 ledger (unreachable,
lost mid-run, disk full under it); 6 saved plan stale; 7 removals blocked by a safety
cap; 8 target failures or deferred actions; 9 source records skipped; 10 `probe` found
the device differs; 11 the host refused (disk full, read-only, permission, address in
use); 12 cancelled: a prompt declined, or a confirmation needed without a terminal and
without `--yes`; 70 an unexpected error (a bug); 130 interrupted (Ctrl-C, SIGTERM).
`apply` gives the first of 8, 7, 9; `plan --check` 9 before 1 (see syncd.errors).

An environmental fault (a lost database connection, a full disk) is one line on the
terminal; its traceback goes to the debug log only (`syncd.errors.environmental`). Any
other exception is a bug: one line naming the 0600 file that holds its traceback, exit
70 (`syncd.cli.crash`); `syncd --debug COMMAND` prints the traceback instead. A crash
never exits 1, the code a monitoring check reads as "changes pending".

Ctrl-C and SIGTERM: while an apply runs, the first one stops it on time (requests in
flight cancelled, terminal locks released within `apply.release_timeout_s`, the run
recorded as interrupted; exit 130), and the process leaves by `daemon.stop_timeout_s`
whatever happens. Otherwise, or at the second one, the command ends at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
import typer.main
from rich.text import Text

from syncd.cli.crash import report_crash
from syncd.cli.lazy import LazyGroup
from syncd.cli.output import make_console
from syncd.entry import version_line
from syncd.errors import (
    UNEXPECTED_EXIT,
    Cancelled,
    Interrupted,
    SyncdError,
    environmental,
    exit_code,
)

if TYPE_CHECKING:
    from syncd.engine import stopping

app = typer.Typer(
    name="syncd",
    help="Keep door-access systems (EF-45, CLUe) in step with HR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LazyGroup,  # commands are imported when used: see syncd.cli.catalog
)

_err = make_console(stderr=True)
log = logging.getLogger("syncd.cli")


class _Options:
    """The options given before the command (`syncd --debug plan`)."""

    debug = False


def _print_version(asked: bool) -> None:
    """`--version` among other options (`syncd --debug --version`); alone, syncd.entry
    answers it without loading this module."""
    if asked:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            is_eager=True,
            callback=_print_version,
            help="Print syncd's version and exit.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Print the traceback of an unexpected error (a bug)."),
    ] = False,
) -> None:
    """Keep door-access systems (EF-45, CLUe) in step with HR."""
    _Options.debug = debug
    _stop_on_signals()


# The `with` block of the running `main`: what the command about to run enters.
_running: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar(
    "syncd_cli_running", default=None
)


def _stop_on_signals() -> None:
    """Handle Ctrl-C and SIGTERM as the module says until `main` returns. Entered here,
    when a command is about to run (its module imported), not in `main`: `--help` and
    usage errors then never import the engine's stopping and asyncio behind it."""
    from syncd.engine import stopping

    stack = _running.get()
    if stack is None:  # the app called without `main` (a test's CliRunner)
        return
    stop = stopping.Stop()
    stack.enter_context(_signals(stop))
    stack.enter_context(stopping.scope(stop))


def command_tree() -> LazyGroup:
    """Return the root click group with every command imported (for tools and tests that
    walk all commands; the CLI itself imports a command only when it runs)."""
    group = typer.main.get_group(app)
    assert isinstance(group, LazyGroup)
    group.load_all()
    return group


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map syncd's errors to their exit codes with a one-line message."""
    with contextlib.ExitStack() as running:
        token = _running.set(running)
        try:
            # Without standalone mode click returns the code of a typer.Exit instead of raising.
            code = app(args=argv, standalone_mode=False)
        except SyncdError as error:
            _fail(error)
        except typer.Exit as done:
            sys.exit(done.exit_code)
        except (typer.Abort, KeyboardInterrupt) as error:
            if isinstance(error, KeyboardInterrupt) or isinstance(
                error.__cause__, KeyboardInterrupt
            ):
                _err.print("interrupted")
                sys.exit(Interrupted.exit_code)
            _fail(Cancelled("cancelled: no answer to the question"))  # EOF at a prompt
        except Exception as error:  # click's usage errors carry their own exit code
            _fail_foreign(error)
        finally:
            _running.reset(token)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(error: SyncdError) -> NoReturn:
    _say_error(str(error))
    sys.exit(exit_code(error))


def _say_error(text: str) -> None:
    """Print `text` as one `error:` line on stderr, brackets and all."""
    _err.print(Text.assemble(("error:", "red"), " ", text), soft_wrap=True)


def _fail_foreign(error: Exception) -> NoReturn:
    """Exit for an error that is not syncd's: click's own code, or an environmental
    fault's one line (traceback to the debug log), or a bug's line and exit 70."""
    code = getattr(error, "exit_code", None)
    if isinstance(code, int):
        show = getattr(error, "show", None)
        if callable(show):
            show()
        sys.exit(code)
    fault = environmental(error)
    if fault is not None:
        log.debug("environmental fault", exc_info=error)
        _fail(fault)
    if _Options.debug:
        traceback.print_exception(error, file=sys.stderr)
    _say_error(report_crash(error, debug=_Options.debug))
    sys.exit(UNEXPECTED_EXIT)


@contextlib.contextmanager
def _signals(stop: stopping.Stop) -> Iterator[None]:
    """Handle SIGINT and SIGTERM for the block (main thread only): see the module."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() or not stop.listened:
            raise KeyboardInterrupt(name)  # nothing to stop on time: end now
        stop.set(name)
        _leave_after(stop.limit_s)

    before = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _leave_after(seconds: float) -> None:
    """Exit the process (130) in `seconds` if it has not ended by then."""

    def leave() -> None:
        _err.print(f"error: still stopping after {seconds:g} s (daemon.stop_timeout_s): exiting")
        logging.shutdown()
        os._exit(Interrupted.exit_code)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
