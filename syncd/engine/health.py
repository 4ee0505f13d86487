"""Target health from an apply's outcome: which runs failed, and who rests in quarantine.

A target's run *fails* only for a target-level reason: its session could not be opened
or was given up (unreachable, lock busy or lost, API key refused, a storm of temporary
errors: `ApplyResult.errors`), or every action it was given failed with a temporary error
(a 5xx storm too short for `apply.STORM_AFTER`). Records the target refused (a duplicate
card, a 404 on one person, a validation error, a full database) say nothing against the
target: they back off one by one (`target_records.next_attempt_at`), and a run in which
the target answered counts as a success, however many records it refused. So one bad
record never quarantines a terminal, nor delays anyone else's removal.

`quarantine_after` failed runs in a row quarantine a target (`ledger.health`); while
quarantined, its actions are deferred until `quarantine_retry_s` after its last failure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa

from syncd.engine.apply import ApplyResult
from syncd.ledger import health
from syncd.model import Plan

STORM = "every action failed with a temporary error"


def run_verdicts(attempted: Iterable[str], result: ApplyResult) -> tuple[list[str], dict[str, str]]:
    """Given the targets an apply was given actions for, return (those whose run
    succeeded, target → why its run failed); a target that got no answer either way
    (stopped before its first action) is in neither."""
    succeeded: list[str] = []
    failed: dict[str, str] = {}
    for target in sorted(attempted):
        counts = result.per_target.get(target)
        if target in result.errors:
            failed[target] = result.errors[target]
        elif counts and counts["failed"] and not counts["applied"]:
            if result.temporary[target] >= counts["failed"]:
                failed[target] = STORM
            else:
                succeeded.append(target)  # it answered: the records were refused
        elif counts:
            succeeded.append(target)
    return succeeded, failed


def record_health(
    engine: sa.Engine, plan: Plan, result: ApplyResult, *, now: datetime, quarantine_after: int
) -> None:
    """Record in the ledger the verdict on each target's run of `plan` (`run_verdicts`)."""
    # A target whose deep look failed was attempted too, though it may have no action.
    attempted = {a.target for a in plan.runnable()} | set(plan.unobserved)
    succeeded, failed = run_verdicts(attempted, result)
    health.record_run_outcomes(
        engine, succeeded, failed, now=now, quarantine_after=quarantine_after
    )


def resting_targets(
    engine: sa.Engine, names: Collection[str], *, now: datetime, retry_s: float
) -> set[str]:
    """Return those of `names` that are quarantined and whose next slow retry, `retry_s`
    after their last failed run, has not come yet."""
    retry = timedelta(seconds=retry_s)
    return {
        name
        for name, h in health.load_health(engine).items()
        if name in names
        and h.quarantined
        and h.last_failure_at is not None
        and now < h.last_failure_at + retry
    }
