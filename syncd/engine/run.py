"""One reconcile, as the CLI and the daemon run it: read → guard → plan → (apply).

`Engine.read` reads every source and refuses a read that looks wrong (empty or shrunk
beyond `safety.max_source_shrink` while the ledger holds people). `Engine.plan` is the
pure plan plus the removal caps. `Engine.apply` takes the run lock, re-reads and
re-plans under it (so it never acts on a stale view), records the run, the people and
every action's outcome, and only then moves source cursors. A dry run writes nothing but
its own `runs` row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from syncd.config import Config
from syncd.engine.apply import Applier, ApplyResult, Progress
from syncd.engine.factory import build_sources, build_targets
from syncd.engine.plan import Desired, Policy, compute_plan
from syncd.engine.safety import Caps, apply_caps
from syncd.errors import SourceError, SourceRefused
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger, StoredPerson
from syncd.model import Person, Plan
from syncd.sources.base import Source, SourceRead
from syncd.targets.base import Target

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reading:
    """The sources' answers and the desired state built from them and the ledger."""

    desired: Desired
    reads: Mapping[str, SourceRead]
    newly_gone: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Every record a source skipped, as one line each."""
        return [str(p) for read in self.reads.values() for p in read.problems]


@dataclass
class Engine:
    """A configured syncd: ledger, sources, targets and a clock."""

    config: Config
    ledger: Ledger
    sources: dict[str, Source]
    targets: dict[str, Target]
    clock: Clock = utc_now

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        only_targets: frozenset[str] | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Clock = utc_now,
    ) -> Engine:
        """Open the ledger (schema checked) and build the configured sources and targets."""
        ledger = Ledger.open(config.ledger.url)
        targets = build_targets(config, only=only_targets, transports=transports)
        return cls(config, ledger, build_sources(config), targets, clock)

    def close(self) -> None:
        """Release the ledger's connections."""
        self.ledger.close()

    def read(self, *, allow_shrink: bool = False) -> Reading:
        """Read every source; raise SourceRefused for a read that looks wrong."""
        stored = self.ledger.load_people()
        reads: dict[str, SourceRead] = {}
        for name, source in self.sources.items():
            read = source.read(cursor=self.ledger.get_cursor(f"source:{name}"), full=True)
            self._guard(name, read, stored, allow_shrink)
            reads[name] = read
        return self._desired(reads, stored)

    def _guard(
        self, name: str, read: SourceRead, stored: Mapping[str, StoredPerson], allow_shrink: bool
    ) -> None:
        if not read.complete:
            return
        held = sum(1 for p in stored.values() if p.source == name and p.gone_since is None)
        seen = len(read.people) + len(read.held)
        if held and not seen:
            raise SourceRefused(
                f"source {name} returned no one while the ledger holds {held} people: refused"
            )
        shrink = (held - seen) / held if held else 0.0
        if shrink > self.config.safety.max_source_shrink and not allow_shrink:
            raise SourceRefused(
                f"source {name} returned {seen} people where the ledger holds {held} "
                f"({shrink:.0%} fewer, over the {self.config.safety.max_source_shrink:.0%} "
                "limit): refused; pass --allow-shrink if this is intended"
            )

    def _desired(
        self, reads: Mapping[str, SourceRead], stored: Mapping[str, StoredPerson]
    ) -> Reading:
        people: dict[str, Person] = {}
        gone: dict[str, Person] = {}
        newly_gone: dict[str, frozenset[str]] = {}
        for name, read in reads.items():
            present = _present_people(name, read, stored)
            if clash := set(present) & set(people):
                raise SourceError(f"keys returned by more than one source: {sorted(clash)[:5]}")
            people.update(present)
            mine = {k for k, p in stored.items() if p.source == name and k not in present}
            newly_gone[name] = frozenset(k for k in mine if stored[k].gone_since is None)
        for key, person in stored.items():
            if key not in people:
                gone[key] = person.person
        return Reading(Desired(people=people, gone=gone), reads, newly_gone)

    def plan(self, reading: Reading, *, allow_deletes: int | None = None) -> Plan:
        """Return the plan for `reading` against the ledger, removal caps applied."""
        safety = self.config.safety
        policy = Policy(
            delete_after=timedelta(days=safety.delete_after_days),
            protected_keys=frozenset(safety.protected_keys),
        )
        held = self.ledger.load_held()
        plan = compute_plan(
            reading.desired, list(self.targets.values()), held, policy, self.clock()
        )
        counts = {t: sum(1 for r in recs.values() if r.present) for t, recs in held.items()}
        caps = Caps(safety.max_deletes, safety.max_delete_share, allow_deletes)
        return apply_caps(plan, counts, caps)

    def record_dry_run(self, plan: Plan, trigger: str = "cli") -> int:
        """Record a dry run in `runs` (nothing else is written); return its id."""
        now = self.clock()
        run_id = self.ledger.start_run(kind="plan", trigger=trigger, dry_run=True, now=now)
        counts = {s.target: _summary_counts(s) for s in plan.summaries}
        self.ledger.finish_run(run_id, outcome="planned", counts=counts, now=self.clock())
        return run_id

    def apply(
        self,
        *,
        trigger: str = "cli",
        allow_shrink: bool = False,
        allow_deletes: int | None = None,
        progress: Progress | None = None,
        wait_lock_s: float = 0.0,
        before_apply: Callable[[Plan], bool] | None = None,
    ) -> tuple[Plan, ApplyResult, int]:
        """Under the run lock: read, plan, apply, record. Return (plan, result, run id).

        `before_apply` sees the plan made under the lock and may return False to stop
        (nothing is then applied; the run is recorded as cancelled).
        """
        with run_lock(self.ledger.engine, wait_s=wait_lock_s):
            reading = self.read(allow_shrink=allow_shrink)
            plan = self.plan(reading, allow_deletes=allow_deletes)
            run_id = self.ledger.start_run(
                kind="apply", trigger=trigger, dry_run=False, now=self.clock()
            )
            if before_apply is not None and not before_apply(plan):
                self.ledger.finish_run(run_id, outcome="cancelled", counts={}, now=self.clock())
                return plan, ApplyResult(), run_id
            self._save_people(reading)
            applier = Applier(self.ledger, run_id, self.config.apply, self.clock, progress)
            result = asyncio.run(applier.run(plan, self.targets))
            self._finish(run_id, plan, result, reading)
            return plan, result, run_id

    def _save_people(self, reading: Reading) -> None:
        now = self.clock()
        for name, read in reading.reads.items():
            seen = {k: p for k, p in read.people.items()}
            self.ledger.save_people(name, seen, reading.newly_gone.get(name, frozenset()), now)

    def _finish(self, run_id: int, plan: Plan, result: ApplyResult, reading: Reading) -> None:
        failed = result.count("failed")
        outcome = (
            "failed" if failed and not result.count("applied") else "partial" if failed else "ok"
        )
        if plan.blocked and outcome == "ok":
            outcome = "blocked"
        message = "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())) or None
        self.ledger.finish_run(
            run_id, outcome=outcome, counts=result.as_counts(), now=self.clock(), message=message
        )
        for name, read in reading.reads.items():
            if read.cursor is not None:
                self.ledger.set_cursor(f"source:{name}", read.cursor, self.clock())


def _present_people(
    name: str, read: SourceRead, stored: Mapping[str, StoredPerson]
) -> dict[str, Person]:
    if read.complete:
        present = dict(read.people)
    else:
        present = {
            k: p.person for k, p in stored.items() if p.source == name and p.gone_since is None
        }
        present.update(read.people)
        for key in read.deleted:
            present.pop(key, None)
    for key in read.held:
        if key in stored and key not in present:
            present[key] = stored[key].person
    return present


def _summary_counts(summary: object) -> dict[str, int]:
    fields = ("create", "update", "disable", "delete", "blocked", "unchanged", "deferred")
    return {name: int(getattr(summary, name)) for name in fields}
