"""What syncd remembers of an EF-45 terminal's lock across sessions and processes.

A terminal holds one lock. A session that dies (`kill -9`), or whose lock request or
release got no answer, can leave the terminal locked by nobody alive; every later run
would then fail with "lock busy". `LockState`, kept durably through a `LockMemo`, lets
the next session clear exactly such locks and nothing else:

- `held`: the uid of a lock syncd took and did not release → released by that uid;
- `pending`: a lock request was sent and its answer never read → its fate is unknown;
- `lost_at`: when a lock request last went unanswered. A device that stalls may still
  grant it later, to nobody. For `GHOST_WINDOW_S` after that, a terminal found locked
  is taken over (`PUT /lock`) as most likely held by syncd's own lost request; past the
  window, a busy lock is someone else's and is left alone (unless `steal_lock`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Protocol

GHOST_WINDOW_S = 600.0


class LockMemo(Protocol):
    """Durable storage of one terminal's LockState (syncd keeps it in its ledger)."""

    def recall(self) -> str | None:
        """Return the text last remembered, or None."""
        ...

    def remember(self, value: str | None) -> None:
        """Store `value` durably before returning (None: forget)."""
        ...


@dataclass(frozen=True, slots=True)
class LockState:
    """See the module docstring. Times are epoch seconds."""

    held: str | None = None
    pending: bool = False
    lost_at: float | None = None

    @classmethod
    def decode(cls, text: str | None) -> LockState:
        """Return the state stored as `text` (anything unreadable reads as nothing held)."""
        try:
            data = json.loads(text) if text else {}
            return cls(data.get("held"), bool(data.get("pending")), data.get("lost_at"))
        except (ValueError, AttributeError):
            return cls()

    def encode(self) -> str | None:
        """Return the text to store (None when there is nothing worth remembering)."""
        if self == LockState():
            return None
        return json.dumps({"held": self.held, "pending": self.pending, "lost_at": self.lost_at})

    def requesting(self, now: float | None = None) -> LockState:
        """Return the state to store before sending a lock request."""
        lost_at = (now or time.time()) if self.pending else self.lost_at
        return LockState(held=None, pending=True, lost_at=lost_at)

    def may_hold_ghost(self, now: float | None = None) -> bool:
        """Return True while a busy lock is most likely syncd's own unanswered request."""
        return self.lost_at is not None and (now or time.time()) - self.lost_at < GHOST_WINDOW_S

    def taken(self, uid: str) -> LockState:
        """Return the state once the lock `uid` is held."""
        return replace(self, held=uid, pending=False)

    def released(self) -> LockState:
        """Return the state once nothing is held (a recent loss is still remembered)."""
        return LockState(lost_at=self.lost_at if self.may_hold_ghost() else None)
