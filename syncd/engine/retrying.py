"""The one retry policy of apply (tenacity), for an action and for a target's session.

Each try is counted from the first (nothing peeled out by hand). Both are bounded by
`[apply] retries` (attempts after the first) and by time: the applier runs an action's
policy within `action_deadline_s` (the request or pause in flight is cancelled, the
action fails with ActionDeadline) and a target's sessions within `target_deadline_s`. Pauses
grow from `retry_initial_s`, doubling up to `retry_max_s`, plus a random jitter of up to
`retry_initial_s`; a `TemporaryTargetError` that says how long to wait
(`retry_after_s`: a 429's Retry-After, a lock's wait) is waited at least that long.

No nesting: an action's tries are counted across sessions (`tries`, kept by the
applier). A target-level temporary error that outlasts them (the session itself may be
broken) goes to the session policy, which reopens the session and goes on from that
action; an action whose tries are spent is not tried again in the new session (the
applier records it failed). One stuck action is thus tried at most `retries + 1`
times, never `(retries + 1)²`.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base
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


class stop_after_tries(stop_base):
    """Stop once `tries()` (an action's tries so far, across sessions) reaches `limit`."""

    def __init__(self, tries: Callable[[], int], limit: int) -> None:
        self._tries = tries
        self._limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._tries() >= self._limit


def action_policy(settings: ApplyConfig, tries: Callable[[], int]) -> AsyncRetrying:
    """Return the policy of a target's actions: temporary errors retried (a storm
    excepted) until `tries()` reaches `retries + 1` (time: see the module docstring)."""
    return AsyncRetrying(
        retry=retry_if_exception(_temporary),
        stop=stop_after_tries(tries, settings.retries + 1),
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


def _temporary(exc: BaseException) -> bool:
    """A temporary error may pass on a retry; a storm has had its retries, action after
    action."""
    return isinstance(exc, TemporaryTargetError) and not isinstance(exc, TargetStorm)


def _target_level_temporary(exc: BaseException) -> bool:
    return _temporary(exc) and isinstance(exc, TemporaryTargetError) and exc.target_level
