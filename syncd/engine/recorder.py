"""The recorder: what a run leaves in the ledger besides the actions' own outcomes.

A run's row (`runs`: started, then finished with its `RunOutcome`, counts and message),
the source records it skipped, the people as the sources gave them, the removals an
administrator released, each target's health, and last the source cursors: they move
only once the people and every outcome are committed, so a crash before that re-reads
the same changes instead of skipping them. A dry run records its row and its skipped
records, nothing else.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from syncd.config import Config
from syncd.engine import instep
from syncd.engine.apply import ApplyResult
from syncd.engine.health import record_health
from syncd.engine.reader import Reading
from syncd.errors import cut
from syncd.ledger.deadruns import run_counts
from syncd.ledger.runproblems import record_problems
from syncd.ledger.store import Ledger
from syncd.model import ActionOutcome, Plan, RunOutcome, TargetSummary
from syncd.sources.base import SourceProblem

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def run_outcome(plan: Plan, result: ApplyResult) -> RunOutcome:
    """Return how an applied run ended: interrupted if stopped; failed if actions failed
    (or a deep look at a target failed) and none applied, partial if some did; blocked if
    removals were held by a cap; else ok."""
    failed = result.count(ActionOutcome.FAILED) + len(plan.unobserved)
    if result.stopped:
        return RunOutcome.INTERRUPTED
    if failed:
        return RunOutcome.PARTIAL if result.count(ActionOutcome.APPLIED) else RunOutcome.FAILED
    return RunOutcome.BLOCKED if plan.blocked else RunOutcome.OK


@dataclass
class Recorder:
    """Writes one configured syncd's runs to its ledger; `clock` stamps their ends."""

    config: Config
    ledger: Ledger
    clock: Clock

    def record_dry_run(
        self, plan: Plan, trigger: str, problems: Sequence[SourceProblem], now: datetime
    ) -> int:
        """Record a dry run in `runs` and its `problems` (nothing else); return its id."""
        run_id = self.ledger.start_run(kind="plan", trigger=trigger, dry_run=True, now=now)
        record_problems(self.ledger.db, run_id, problems)
        counts = {s.target: _summary_counts(s) for s in plan.summaries}
        self.ledger.finish_run(run_id, outcome=RunOutcome.PLANNED, counts=counts, now=self.clock())
        return run_id

    def start(self, trigger: str, reading: Reading) -> int:
        """Record the start of an applying run and the records its sources skipped; the
        in-step mark is withdrawn before anything is written (`engine.instep`)."""
        instep.clear(self.ledger, reading.now)
        run_id = self.ledger.start_run(
            kind="apply", trigger=trigger, dry_run=False, now=reading.now
        )
        record_problems(self.ledger.db, run_id, reading.problems)
        return run_id

    def cancelled(self, run_id: int) -> None:
        """Record run `run_id` as cancelled before anything was applied."""
        self.ledger.finish_run(run_id, outcome=RunOutcome.CANCELLED, counts={}, now=self.clock())

    @contextlib.contextmanager
    def interrupted_on_error(self, run_id: int) -> Iterator[None]:
        """Record run `run_id` as interrupted if the block raises (best effort: the ledger
        may be what failed), so that no run stays "running"; the error goes on."""
        try:
            yield
        except BaseException as exc:
            try:
                self.ledger.finish_run(
                    run_id, outcome=RunOutcome.INTERRUPTED,
                    counts=run_counts(self.ledger.db, run_id),
                    now=self.clock(), message=cut(f"{type(exc).__name__}: {exc}"),
                )  # fmt: skip
            except Exception:
                log.debug("run %s not marked interrupted", run_id, exc_info=True)
            raise

    def save_people(self, reading: Reading) -> None:
        """Store each source's people as read (those disabled by a defective record too)."""
        for name, read in reading.reads.items():
            seen = dict(read.people)
            # Disabled by a defective record: stored so, so that a later record that is
            # only kept as it was ("nothing changes") keeps them disabled.
            present = reading.desired.people
            seen.update((k, present[k]) for k in read.disabled if k in present)
            gone = reading.newly_gone.get(name, frozenset())
            self.ledger.save_people(name, seen, gone, reading.now)

    def finish(
        self, run_id: int, plan: Plan, result: ApplyResult, reading: Reading, why: str = ""
    ) -> None:
        """Record the end of an applied run, each target's health, then the cursors (not
        moved after a stop: what was not done is read again)."""
        message = "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())) or None
        if result.stopped:
            message = f"interrupted: {why}" + (f"; {message}" if message else "")
        outcome = run_outcome(plan, result)
        counts = result.as_counts()
        self.ledger.finish_run(run_id, outcome=outcome, counts=counts, now=self.clock(),
                               message=message)  # fmt: skip
        record_health(self.ledger.db, plan, result, now=self.clock(),
                      quarantine_after=self.config.apply.quarantine_after)  # fmt: skip
        if not result.stopped:
            self._move_cursors(reading)

    def _move_cursors(self, reading: Reading) -> None:
        # Only once the people and every outcome are committed may the cursors move: a
        # crash before this re-reads the same changes, never skips them.
        now = self.clock()
        for name, read in reading.reads.items():
            if read.cursor is not None:
                self.ledger.set_cursor(f"source:{name}", read.cursor, now)
            if read.complete:
                self.ledger.set_cursor(f"source:{name}:full_at", reading.now.isoformat(), now)


def _summary_counts(s: TargetSummary) -> dict[str, int]:
    return {"create": s.create, "update": s.update, "disable": s.disable, "delete": s.delete,
            "blocked": s.blocked, "unchanged": s.unchanged, "deferred": s.deferred}  # fmt: skip
