"""`syncd unlock TARGET`: release an EF-45 terminal's lock, whoever holds it.

    syncd unlock door-1            # shows the holder syncd knows of, asks, releases
    syncd unlock door-1 --yes      # no question (scripts)

For the case syncd refuses to settle by itself: a lock its own unanswered request may
hold (uid unknown), a lock of a syncd on another host, or the vendor software's lock
left behind. It holds the run lock meanwhile, like every command that locks terminals.
Exit 0 released; 1 refused (no --yes without a TTY: nothing released); 2 unknown
target; 3 not an EF-45 target; 5 run lock busy; 8 the terminal refused or did not answer;
12 declined at the question.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from syncd.cli.commands import ConfigOption
from syncd.cli.output import make_console
from syncd.config import Ef45TargetConfig, load_config
from syncd.errors import Cancelled, ConfigError, UsageError
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger
from syncd.targets.ef45.connection import Ef45Connection
from syncd.targets.ef45.lockstate import LockState, policy_of

console = make_console()


def register(app: typer.Typer) -> None:
    """Add `unlock` to `app`."""
    app.command("unlock")(unlock)


def unlock(
    target: Annotated[str, typer.Argument(help="The EF-45 target, as named in syncd.toml.")],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Release without asking.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run lock.")] = 0.0,
) -> None:
    """Show who holds an EF-45 terminal's lock (as far as syncd knows) and release it.

    Releases by the uid syncd remembers, else takes the lock (PUT /lock) and releases it:
    an operator enrolling at the vendor software loses the lock, hence the question.
    """
    settings = load_config(config)
    terminal = settings.targets.get(target)
    if terminal is None:
        known = ", ".join(sorted(settings.targets)) or "none configured"
        raise UsageError(f"unlock {target}: unknown target (known: {known})")
    if not isinstance(terminal, Ef45TargetConfig):
        raise ConfigError(f"unlock {target}: not an EF-45 terminal (no lock)")
    ledger = Ledger.open(settings.ledger.url)
    try:
        with run_lock(ledger.db, wait_s=wait):
            memo = LedgerLockMemo(ledger, target)
            holder = LockState.decode(memo.recall()).holder_text()
            console.print(f"{target} ({terminal.url}): lock held by {holder}")
            if not _confirmed(yes, target):
                raise Cancelled(f"unlock {target} cancelled: nothing released")
            connection = Ef45Connection(
                base_url=terminal.url,
                timeout_s=terminal.timeout_s,
                steal_lock=True,
                transport=None,
                lock_memo=memo,
                lock_policy=policy_of(terminal),
            )
            done = asyncio.run(connection.unlock())
    finally:
        ledger.close()
    console.print(f"{target}: {done}")


def _confirmed(yes: bool, target: str) -> bool:
    """Return True to release; exit 1 without a terminal to ask on (nothing released:
    `unlock` keeps its documented refusal code), False when the user declines."""
    if yes:
        return True
    if not sys.stdin.isatty():
        console.print("refusing to unlock without --yes on a non-interactive terminal", style="red")
        raise typer.Exit(1)
    return typer.confirm(f"Release the lock of {target}? Whoever holds it loses it.")
