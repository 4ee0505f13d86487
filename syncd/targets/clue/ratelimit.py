"""A place that keeps answering 429 is left alone for a while, not asked again per action.

Each request rides out 429s for at most `max_429_wait_s` in all (`ClueClient`). A
request that spends all of it closes the place's `RateLimitGate`, shared by every client
of one `ClueTarget` (the apply session, a reopened one, the events reader): for the next
`max_429_wait_s` every request fails at once with ClueRateLimited, without being sent.
So a place that answers 429 to everything costs a run about one `max_429_wait_s`, not one
per action (the engine reopens a session after a target-level temporary error, and that
reopened session is refused at once too), and its actions are retried on the next run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from syncd.targets.clue.errors import ClueRateLimited


class RateLimitGate:
    """Open until `close`; then closed for the given time (monotonic clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = -float("inf")
        self._why = ""

    def check(self, what: str) -> None:
        """Raise ClueRateLimited (naming `what`, the request not sent) while closed."""
        if self._clock() < self._until:
            raise ClueRateLimited(f"{what}: not sent, the place is rate limited: {self._why}", 429)

    def close(self, for_s: float, why: str) -> None:
        """Refuse every request for the next `for_s` seconds; `why` goes into their errors."""
        self._until = max(self._until, self._clock() + for_s)
        self._why = why
