"""A terminal lock's memo kept in the ledger's `cursors` table (see ef45 LockMemo).

Each write is its own committed transaction, made before the lock request it describes,
so a `kill -9` at any instant leaves the next run enough to clear the terminal's lock.
The memo names its owner: this process (host, pid, start, token: `syncd.owners`) and the
ledger run it is recording (`Ledger.active_run`), so another process can tell a live
holder from an ended one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.ledger.store import Ledger
from syncd.owners import Owner, ProcessId


def lock_cursor(target: str) -> str:
    """Return the `cursors` row name of a target's lock memo."""
    return f"lock:{target}"


class LedgerLockMemo:
    """The lock memo of one target, stored as cursor `lock:<target>` ("" when nothing).

    `process` is who this memo says takes the locks (default: this process); tests
    name another to play a second process.
    """

    def __init__(self, ledger: Ledger, target: str, *, process: ProcessId | None = None) -> None:
        self.ledger = ledger
        self.target = target
        self.name = lock_cursor(target)
        self.process = process or ProcessId.current()

    def recall(self) -> str | None:
        """Return what the last session of this target left, or None."""
        return self.ledger.get_cursor(self.name) or None

    def remember(self, value: str | None) -> None:
        """Store `value` (None clears it), committed before returning."""
        self.ledger.set_cursor(self.name, value or "", datetime.now(UTC))

    def owner(self) -> Owner:
        """Return this process and the run its ledger is recording now (if any)."""
        return Owner(self.process, self.ledger.active_run)
