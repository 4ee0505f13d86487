"""One action's outcome as the ledger records it (`Ledger.record_outcomes`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.model import Action, ActionOutcome


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one action (`ActionOutcome`), and its details.

    "pending" is written (and committed) before a create is sent: the target may hold
    the record from then on, whatever happens to this process.
    """

    run_id: int
    action: Action
    outcome: ActionOutcome
    now: datetime
    remote_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
