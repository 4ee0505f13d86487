"""Time arithmetic of CLUe: epoch milliseconds, 7-day event windows, waits after a 429.

Pure functions; `syncd.targets.clue.client` uses and re-exports them.
"""

from __future__ import annotations

import contextlib
import email.utils
from datetime import UTC, datetime, timedelta

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
