"""The `syncd` command line. Errors become exit codes here, in one place.

Exit codes: 0 success; 1 `plan --check` found pending changes (`unlock`: refused or
declined); 2 an unexpected error;
3 configuration; 4 source refused or unreadable; 5 ledger (unreachable, lost mid-run,
disk full under it); 6 saved plan stale; 7 actions blocked by a safety cap; 8 target
failures or deferred actions; 9 source records skipped; 10 `probe` found the device
differs; 11 the host refused (disk full, read-only, permission); 130 interrupted (Ctrl-C,
SIGTERM). `apply` gives the first of 8, 7, 9; `plan --check` 9 before 1 (see
syncd.errors).

An environmental fault (a lost database connection, a full disk) is one line on the
terminal; its traceback goes to the debug log only (`syncd.errors.environmental`).

Ctrl-C and SIGTERM: while an apply runs, the first one stops it on time (requests in
flight cancelled, terminal locks released within `apply.release_timeout_s`, the run
recorded as interrupted; exit 130), and the process leaves by `daemon.stop_timeout_s`
whatever happens. Otherwise, or at the second one, the command ends at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

import typer
from rich.console import Console

from syncd.cli import (
    admin,
    backfill,
    commands,
    demo,
    device,
    emulate,
    events,
    show,
    unlock,
    validate,
)
from syncd.cli import daemon as daemon_cli
from syncd.cli import probe as probe_cli
from syncd.engine import stopping
from syncd.errors import Interrupted, SyncdError, environmental, exit_code

app = typer.Typer(
    name="syncd",
    help="Keep door-access systems (EF-45, CLUe) in step with HR.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
commands.register(app)
backfill.register(app)
admin.register(app)
device.register(app)
daemon_cli.register(app)
events.register(app)
unlock.register(app)
probe_cli.register(app)
validate.register(app)
show.register(app)
app.command("demo")(demo.demo)
app.add_typer(emulate.app, name="emulate")

_err = Console(stderr=True)
log = logging.getLogger("syncd.cli")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map syncd's errors to their exit codes with a one-line message."""
    stop = stopping.Stop()
    with _signals(stop), stopping.scope(stop):
        try:
            # Without standalone mode click returns the code of a typer.Exit instead of raising.
            code = app(args=argv, standalone_mode=False)
        except SyncdError as error:
            _fail(error)
        except typer.Exit as done:
            sys.exit(done.exit_code)
        except (typer.Abort, KeyboardInterrupt) as error:
            interrupted = isinstance(error, KeyboardInterrupt) or isinstance(
                error.__cause__, KeyboardInterrupt
            )
            _err.print("interrupted" if interrupted else "aborted")
            sys.exit(Interrupted.exit_code if interrupted else 2)
        except Exception as error:  # click's usage errors carry their own exit code
            _fail_foreign(error)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(error: SyncdError) -> NoReturn:
    _err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    sys.exit(exit_code(error))


def _fail_foreign(error: Exception) -> NoReturn:
    """Exit for an error that is not syncd's: click's own code, or an environmental
    fault's one line (traceback to the debug log); re-raise anything else (a bug)."""
    code = getattr(error, "exit_code", None)
    if isinstance(code, int):
        show = getattr(error, "show", None)
        if callable(show):
            show()
        sys.exit(code)
    fault = environmental(error)
    if fault is None:
        raise error
    log.debug("environmental fault", exc_info=error)
    _fail(fault)


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
