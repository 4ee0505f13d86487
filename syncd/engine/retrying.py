"""The one retry policy of apply (tenacity), for an action and for a target's session.

Each try is counted from the first (nothing peeled out by hand). Both are bounded by
`[apply] retries` (attempts after the first) and by time (`action_deadline_s` for an
action; a session's reopenings by `target_deadline_s`, enforced by the applier). Pauses
grow from `retry_initial_s`, doubling up to `retry_max_s`, plus a random jitter of up to
`retry_initial_s`; a `TemporaryTargetError` that says how long to wait
(`retry_after_s`: a 429's Retry-After, a lock's wait) is waited at least that long.

No nesting: the action policy retries record-level temporary errors only; a
target-level one (the session itself may be broken) goes straight to the session
policy, which reopens the session and goes on from the action that failed. One stuck
action is thus tried at most `retries + 1` times, never `(retries + 1)²`.
"""

from __future__ import annotations

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from syncd.config import ApplyConfig
from syncd.errors import TargetStorm, TemporaryTargetError


class wait_backoff_or_retry_after(wait_base):
    """The backoff of `ApplyConfig`, or the error's `retry_after_s` if that is longer."""

    def __init__(self, settings: ApplyConfig) -> None:
        initial = settings.retry_initial_s
        self._backoff = wait_exponential(multiplier=initial, max=settings.retry_max_s)
        self._jitter = wait_random(0, initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        pause = self._backoff(retry_state) + self._jitter(retry_state)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        asked = error.retry_after_s if isinstance(error, TemporaryTargetError) else None
        return max(pause, asked or 0.0)


def action_policy(settings: ApplyConfig) -> AsyncRetrying:
    """Return the policy of one action: record-level temporary errors retried, at most
    `retries + 1` tries, no pause that would end past `action_deadline_s`."""
    return AsyncRetrying(
        retry=retry_if_exception(_record_level_temporary),
        stop=stop_after_attempt(settings.retries + 1)
        | stop_before_delay(settings.action_deadline_s),
        wait=wait_backoff_or_retry_after(settings),
        reraise=True,
    )


def session_policy(settings: ApplyConfig) -> AsyncRetrying:
    """Return the policy of a target's sessions: reopened after a target-level temporary
    error (a storm excepted: its actions had their tries), at most `retries + 1` opens."""
    return AsyncRetrying(
        retry=retry_if_exception(_target_level_temporary),
        stop=stop_after_attempt(settings.retries + 1),
        wait=wait_backoff_or_retry_after(settings),
        reraise=True,
    )


def _record_level_temporary(exc: BaseException) -> bool:
    return isinstance(exc, TemporaryTargetError) and not exc.target_level


def _target_level_temporary(exc: BaseException) -> bool:
    return (
        isinstance(exc, TemporaryTargetError)
        and exc.target_level
        and not isinstance(exc, TargetStorm)
    )
