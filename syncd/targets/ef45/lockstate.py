"""What syncd remembers of an EF-45 terminal's lock across sessions and processes.

A terminal holds one lock. A session that dies (`kill -9`), or whose lock request or
release got no answer, can leave the terminal locked by nobody alive; every later run
would then fail with "lock busy". `LockState`, kept durably through a `LockMemo`, lets
the next session clear exactly such locks and nothing else:

- `held`: the uid of a lock syncd took and did not release;
- `pending`: a lock request was sent and its answer never read → its fate is unknown;
- `lost_at`: when a lock request last went unanswered. A device that stalls may still
  grant it later, to nobody: a lock syncd cannot release (no uid) and must not steal
  (it cannot tell it from an operator's). The next session then waits up to
  `lock_wait_s` for the lock to come free (a device may drop an idle lock by itself:
  *unverified*), else reports LockBusy naming `syncd unlock TARGET`;
- `owner`: the syncd process (host, pid, start, token) and run that wrote the state.

`judge` decides what a new session may do with a remembered lock: release it only when
its owner is provably gone or is this very process with no session of its own on it;
a live owner, an owner on another host, or an unknown owner (a memo of an older syncd)
is left alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from syncd.config import Ef45TargetConfig
from syncd.owners import Owner, ProcessId
from syncd.targets.ef45.ids import is_lock_uid, shown

log = logging.getLogger(__name__)
DEFAULT_LOST_LOCK_STATUSES = (401, 403, 423)


class LockMemo(Protocol):
    """Durable storage of one terminal's LockState (syncd keeps it in its ledger)."""

    @property
    def target(self) -> str:
        """The configured name of the terminal (for `syncd unlock NAME` in messages)."""
        ...

    def recall(self) -> str | None:
        """Return the text last remembered, or None."""
        ...

    def remember(self, value: str | None) -> None:
        """Store `value` durably before returning (None: forget)."""
        ...

    def owner(self) -> Owner:
        """Return who takes locks through this memo: this process and its current run."""
        ...


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """How a session treats the lock (from `[targets.NAME]`; see `Ef45TargetConfig`).

    `wait_s`: how long to wait for a lock that syncd's own unanswered request may hold;
    `poll_s`: the first pause between lock requests while waiting (doubled each time, at
    most `max_poll_s`); `lost_statuses`: the statuses of a locked call that mean "you do
    not hold the lock" (*unverified* on the real device).
    """

    wait_s: float = 30.0
    poll_s: float = 0.25
    max_poll_s: float = 5.0
    lost_statuses: frozenset[int] = field(default=frozenset(DEFAULT_LOST_LOCK_STATUSES))


def policy_of(config: Ef45TargetConfig) -> LockPolicy:
    """Return the lock policy configured for one terminal."""
    return LockPolicy(wait_s=config.lock_wait_s, lost_statuses=frozenset(config.lost_lock_statuses))


class Verdict(Enum):
    """What a new session may do with the lock a memo remembers."""

    NOTHING = "nothing"
    """Nothing held, or only a lost request (no uid) of a process that is not running."""
    STALE = "stale"
    """Held by a syncd session that provably ended: release it by its uid."""
    LIVE = "live"
    """Held or being requested by a running syncd process: leave it alone."""
    FOREIGN = "foreign"
    """Held by a process syncd cannot check (another host, or unnamed): leave it alone."""


@dataclass(frozen=True, slots=True)
class LockState:
    """See the module docstring. Times are epoch seconds."""

    held: str | None = None
    pending: bool = False
    lost_at: float | None = None
    owner: Owner | None = None

    @classmethod
    def decode(cls, text: str | None, *, source: str = "lock memo") -> LockState:
        """Return the state stored as `text` (anything unreadable reads as nothing held).

        A held uid that is not a lock uid (`ids.is_lock_uid`: a value a hostile or broken
        terminal handed an older syncd) is discarded with a warning naming `source`: it is
        never sent back to the terminal, and the next session goes on as if none is held.
        """
        try:
            data = json.loads(text) if text else {}
            held, lost_at = data.get("held"), data.get("lost_at")
            if held is not None and held != "" and not is_lock_uid(held):
                log.warning(
                    "%s: discarded a remembered lock uid that is not a UUID: %s",
                    source,
                    shown(held),
                )
                held = None
            process = ProcessId.from_json(data.get("process"))
            run = data.get("run")
            owner = Owner(process, run if isinstance(run, int) else None) if process else None
            return cls(
                held if isinstance(held, str) and held else None,
                bool(data.get("pending")),
                float(lost_at) if isinstance(lost_at, int | float) else None,
                owner,
            )
        except (ValueError, AttributeError, TypeError):
            return cls()

    def encode(self) -> str | None:
        """Return the text to store (None when there is nothing worth remembering)."""
        if self.held is None and not self.pending and self.lost_at is None:
            return None
        data: dict[str, object] = {
            "held": self.held,
            "pending": self.pending,
            "lost_at": self.lost_at,
        }
        if self.owner is not None:
            data.update(process=self.owner.process.as_json(), run=self.owner.run)
        return json.dumps(data)

    def requesting(self, owner: Owner, now: float) -> LockState:
        """Return the state to store before `owner` sends a lock request.

        A request still pending here went unanswered: its time becomes `lost_at`.
        """
        lost_at = now if self.pending else self.lost_at
        return LockState(held=None, pending=True, lost_at=lost_at, owner=owner)

    def taken(self, uid: str) -> LockState:
        """Return the state once the lock `uid` is held: the device has one lock, so no
        lost request of syncd's can hold it any more."""
        return LockState(held=uid, owner=self.owner)

    def refused(self) -> LockState:
        """Return the state once a lock request was answered "busy" (a loss is kept)."""
        return LockState(lost_at=self.lost_at, owner=self.owner if self.lost_at else None)

    def released(self) -> LockState:
        """Return the state once nothing is held."""
        return LockState()

    def judge(self, me: Owner, live_uids: Collection[str]) -> Verdict:
        """Return what a session of `me` may do with this remembered lock.

        `live_uids` are the lock uids this process's open sessions hold.
        """
        if self.held is None and not self.pending:
            return Verdict.NOTHING
        alive = self._owner_alive(me, live_uids)
        if alive is None:
            return Verdict.FOREIGN if self.held is not None else Verdict.NOTHING
        if not alive:
            return Verdict.STALE if self.held is not None else Verdict.NOTHING
        return Verdict.LIVE

    def _owner_alive(self, me: Owner, live_uids: Collection[str]) -> bool | None:
        """Whether the owner's session still runs; None when that cannot be told here."""
        if self.owner is None:
            return None
        process = self.owner.process
        if process.same_process(me.process):
            return self.held is not None and self.held in live_uids
        if process.gone():
            return False
        return True if process.host == me.process.host else None

    def holder_text(self) -> str:
        """Return who holds the lock as far as this memo knows, for people."""
        if self.held is None and not self.pending:
            if self.lost_at is not None:
                return "possibly syncd's own lock request that went unanswered (uid unknown)"
            return "nobody syncd knows of (another client, if the terminal is locked)"
        if self.owner is None:
            return "a syncd session of unknown process (memo of an older syncd)"
        what = "holds" if self.held is not None else "is requesting"
        alive = "gone" if self.owner.process.gone() else "running or not checkable from here"
        return f"{self.owner.describe()} {what} it ({alive})"
