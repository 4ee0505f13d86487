"""Time arithmetic of CLUe: epoch milliseconds, 7-day event windows, waits after a 429.

Pure functions, and the 429 retry policy built on them; `syncd.targets.clue.client`
uses and re-exports them.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from datetime import UTC, datetime, timedelta

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RETRY_AFTER_CAP_S = 60.0


def epoch_ms(moment: datetime) -> int:
    """Return the aware datetime `moment` as integer epoch milliseconds (exact)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def event_windows(since_ms: int, until_ms: int) -> list[tuple[int, int]]:
    """Split [since_ms, until_ms] (inclusive) into consecutive windows of at most 7 days.

    Windows do not overlap: each starts 1 ms after the previous one ends.
    """
    windows = []
    start = since_ms
    while start <= until_ms:
        end = min(start + SEVEN_DAYS_MS, until_ms)
        windows.append((start, end))
        start = end + 1
    return windows


def retry_after_s(header: str | None, attempt: int) -> float:
    """Return how long to wait before retry number `attempt` (0-based) after a 429.

    `header` is Retry-After: delay seconds or an HTTP date. Without a usable one, wait
    1, 2, 4 … seconds. Never more than RETRY_AFTER_CAP_S, never less than 0.
    """
    wait: float | None = None
    if header:
        text = header.strip()
        try:
            wait = float(text)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                wait = (email.utils.parsedate_to_datetime(text) - datetime.now(UTC)).total_seconds()
    if wait is None:
        wait = float(2**attempt)
    return max(0.0, min(wait, RETRY_AFTER_CAP_S))


class TooManyRequests(Exception):
    """One 429 answer, and how long it asked to wait (`rate_limit_policy` retries it)."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"429, wait {wait_s:g} s")
        self.wait_s = wait_s


def rate_limit_policy(max_retries: int, max_wait_s: float, began: float) -> AsyncRetrying:
    """Return the policy of one request's 429s: `max_retries` after the first try, none
    after `max_wait_s` from `began` (time.monotonic()); each waits what the 429 asked
    (`retry_after_s`), never past that end. Ends with tenacity's RetryError."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        asked = error.wait_s if isinstance(error, TooManyRequests) else 0.0
        return max(0.0, min(asked, began + max_wait_s - time.monotonic()))

    return AsyncRetrying(
        retry=retry_if_exception_type(TooManyRequests),
        stop=stop_after_attempt(max_retries + 1) | stop_after_delay(max_wait_s),
        wait=wait,
    )
