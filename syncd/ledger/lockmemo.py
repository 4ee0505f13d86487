"""A terminal lock's memo kept in the ledger's `cursors` table (see ef45 LockMemo).

Each write is its own committed transaction, made before the lock request it describes,
so a `kill -9` at any instant leaves the next run enough to clear the terminal's lock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.ledger.store import Ledger


class LedgerLockMemo:
    """The lock memo of one target, stored as cursor `lock:<target>` ("" when nothing)."""

    def __init__(self, ledger: Ledger, target: str) -> None:
        self.ledger = ledger
        self.name = f"lock:{target}"

    def recall(self) -> str | None:
        """Return what the last session of this target left, or None."""
        return self.ledger.get_cursor(self.name) or None

    def remember(self, value: str | None) -> None:
        """Store `value` (None clears it), committed before returning."""
        self.ledger.set_cursor(self.name, value or "", datetime.now(UTC))
