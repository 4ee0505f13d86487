"""The one retry policy of apply: bounded tries and time, Retry-After honoured, no nesting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from syncd.config import ApplyConfig
from syncd.engine.apply import Applier, ApplyResult
from syncd.engine.plan import summarise
from syncd.engine.recorder import run_outcome
from syncd.engine.retrying import action_policy, session_policy
from syncd.errors import PermanentTargetError, TargetStorm, TemporaryTargetError
from syncd.ledger.store import Ledger
from syncd.model import Action, ActionOutcome, Op, Plan, RunOutcome
from syncd.targets.ef45.errors import RETRY_AFTER_CAP_S, retry_after_header

FAST = ApplyConfig(retries=3, retry_initial_s=0.0, retry_max_s=0.0)


class RecordBlip(TemporaryTargetError):
    target_level = False


class SessionBlip(TemporaryTargetError):
    target_level = True


async def _tries(policy_name: str, error: BaseException, settings: ApplyConfig = FAST) -> int:
    """Run a call that always fails with `error` under the named policy; count its tries."""
    tries = 0
    policy = (
        action_policy(settings, lambda: tries)
        if policy_name == "action"
        else session_policy(settings)
    )
    with pytest.raises(type(error)):
        async for attempt in policy:
            with attempt:
                tries += 1
                raise error
    return tries


@pytest.mark.parametrize(
    ("policy", "error", "tries"),
    [
        ("action", RecordBlip("5xx about one record"), 4),  # retries + 1, the first included
        ("action", SessionBlip("connection dropped"), 4),
        ("action", PermanentTargetError("refused"), 1),
        ("action", TargetStorm("three in a row"), 1),
        ("session", SessionBlip("connection refused"), 4),
        ("session", RecordBlip("one record"), 1),  # never escapes an action
        ("session", TargetStorm("three in a row"), 1),  # its actions had their tries
    ],
)
def test_each_error_is_retried_by_one_policy_only(
    policy: str, error: BaseException, tries: int
) -> None:
    assert asyncio.run(_tries(policy, error)) == tries


class StuckTarget:
    """A target whose every request fails with a target-level temporary error."""

    name = "door"

    def __init__(self) -> None:
        self.sent = 0
        self.opened = 0

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[StuckTarget]:
        self.opened += 1
        yield self

    async def apply(self, action: Action) -> str | None:
        self.sent += 1
        raise SessionBlip("connection dropped")


def test_a_stuck_action_is_tried_retries_plus_one_times_in_all(ledger: Ledger) -> None:
    """Its tries count across sessions: once they are spent the session is reopened,
    and there the action fails without another try: sent retries + 1 times in all,
    never (retries + 1) squared."""
    target = StuckTarget()
    action = Action("door", "p1", Op.UPDATE, {"name": "x"}, "d", before_digest="b")
    plan = Plan(actions=(action,), summaries=(), created_at=datetime.now(UTC))
    run_id = ledger.start_run(kind="apply", trigger="test", dry_run=False, now=datetime.now(UTC))
    applier = Applier(ledger, run_id, FAST, lambda: datetime.now(UTC))
    result = asyncio.run(applier.run(plan, {"door": target}))  # type: ignore[dict-item]
    assert target.sent == FAST.retries + 1
    assert target.opened == 2
    assert result.count(ActionOutcome.FAILED) == 1


def test_retry_after_is_waited_at_least() -> None:
    error = RecordBlip("503")
    error.retry_after_s = 0.3
    began = time.monotonic()
    assert asyncio.run(_tries("action", error, ApplyConfig(retries=1))) == 2
    assert time.monotonic() - began >= 0.3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0", 0.0), ("1e6", RETRY_AFTER_CAP_S), (None, None), ("-1", None),
     ("nan", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_ef45_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_header(header) == seconds


def _result(**counts: int) -> ApplyResult:
    result = ApplyResult()
    result.per_target["t"] = Counter(counts)
    return result


def _plan(blocked: bool = False) -> Plan:
    action = Action("t", "p", Op.DELETE, {}, "d", blocked="cap" if blocked else None)
    actions = (action,) if blocked else ()
    summary = summarise("t", actions, unchanged=0, deferred=0)
    return Plan(actions=actions, summaries=(summary,), created_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("counts", "blocked", "stopped", "outcome"),
    [
        ({"applied": 2}, False, False, RunOutcome.OK),
        ({"applied": 2, "failed": 1}, False, False, RunOutcome.PARTIAL),
        ({"failed": 1}, False, False, RunOutcome.FAILED),
        ({"applied": 1}, True, False, RunOutcome.BLOCKED),
        ({"failed": 1}, True, False, RunOutcome.FAILED),  # a failure outranks a cap
        ({"applied": 1}, True, True, RunOutcome.INTERRUPTED),
    ],
)
def test_run_outcome_is_one_rule(
    counts: dict[str, int], blocked: bool, stopped: bool, outcome: RunOutcome
) -> None:
    result = _result(**counts)
    result.stopped = stopped
    assert run_outcome(_plan(blocked), result) is outcome
    assert result.count(ActionOutcome.APPLIED) == counts.get("applied", 0)


def test_outcome_values_are_the_ledgers_strings() -> None:
    """The enums change no stored value: the ledger and the JSON stay identical."""
    assert [str(o) for o in ActionOutcome] == ["pending", "applied", "failed", "blocked"]
    assert RunOutcome.INTERRUPTED == "interrupted" and RunOutcome.PLANNED == "planned"
