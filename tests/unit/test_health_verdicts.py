"""Which runs count against a target's health: target-level failures only."""

from __future__ import annotations

from collections import Counter

from syncd.engine.apply import ApplyResult
from syncd.engine.health import STORM, run_verdicts


def result(counts: dict[str, dict[str, int]], **extra: object) -> ApplyResult:
    done = ApplyResult(per_target={t: Counter(c) for t, c in counts.items()})
    for name, value in extra.items():
        setattr(done, name, value)
    return done


def test_records_refused_by_a_target_that_answered_are_no_failure_of_it() -> None:
    refused = result({"door": {"failed": 3}})  # duplicate card, 404, DB full: permanent
    assert run_verdicts(["door"], refused) == (["door"], {})
    mixed = result({"door": {"failed": 1, "applied": 2}}, temporary=Counter(door=1))
    assert run_verdicts(["door"], mixed) == (["door"], {})


def test_a_target_level_error_or_a_storm_fails_the_run() -> None:
    down = result({"door": {"failed": 3}}, errors={"door": "LockBusy: held"})
    assert run_verdicts(["door"], down) == ([], {"door": "LockBusy: held"})
    storm = result({"door": {"failed": 2}}, temporary=Counter(door=2))
    assert run_verdicts(["door"], storm) == ([], {"door": STORM})


def test_a_target_without_any_outcome_is_in_neither() -> None:
    assert run_verdicts(["door"], result({})) == ([], {})
