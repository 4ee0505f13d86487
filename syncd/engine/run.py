"""One reconcile, as the CLI and the daemon run it: read → plan → (apply) → record.

`Syncer` is a configured syncd (ledger, sources, targets, clock) and the seam between
the pipeline's stages, each its own module with a typed value between them:

    sources ──reader──▶ Reading ──planner──▶ Plan ──apply.Applier──▶ ApplyResult
                                                    └──recorder──▶ runs, people, cursors

`Syncer.apply` takes the run lock, reads and plans under it (so it never acts on a
stale view), records the run, the records the sources skipped, the people and every
action's outcome, and only then moves source cursors; it returns a `RunReport`. A dry
run (`read`, `plan`, `record_dry_run`) writes nothing but its own `runs` row and its
skipped records. Every decision of a run is taken at one clock reading (`Reading.now`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from syncd.config import Config
from syncd.engine import instep, stopping
from syncd.engine.access import next_boundary
from syncd.engine.apply import Applier, ApplyResult, Progress
from syncd.engine.capping import record_released
from syncd.engine.enrollments import open_vault, template_loader
from syncd.engine.factory import build_sources, build_targets
from syncd.engine.narrow import restrict_to
from syncd.engine.people import Who
from syncd.engine.planner import PlanOptions, make_plan
from syncd.engine.reader import Reading, ReadOptions, read_sources, wants_full
from syncd.engine.recorder import Clock, Recorder
from syncd.engine.report import DRY_RUN_TITLE, ReportContext
from syncd.engine.saved import SavedPlan, check_fresh, fingerprint
from syncd.ledger.deadruns import close_dead_runs
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.peopleindex import prefetch
from syncd.ledger.pinkey import open_pins
from syncd.ledger.purge import purge_gone
from syncd.ledger.runlock import run_lock
from syncd.ledger.store import Ledger
from syncd.ledger.templates import TemplateVault
from syncd.model import ActionOutcome, Plan
from syncd.sources.base import Source, SourceProblem
from syncd.targets.base import NeedsSecrets, Target

if TYPE_CHECKING:
    import httpx  # for annotations only: the HTTP stack loads with a target kind

__all__ = ["ApplyOptions", "Reading", "RunReport", "Syncer", "utc_now"]


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ApplyOptions:
    """What one applying run is asked (the CLI's flags, the daemon's job).

    `full`: see `reader.ReadOptions`; `allow_shrink` passes the shrink guard;
    `allow_deletes`/`released`: removals released past the caps; `wait_lock_s`: how
    long to wait for the run lock; `saved`: apply exactly this saved plan (PlanStale
    unless source and ledger are as they were); `deep`: repair what the targets really
    hold and record orphans.
    """

    trigger: str = "cli"
    allow_shrink: bool = False
    allow_deletes: int | None = None
    wait_lock_s: float = 0.0
    full: bool | None = None
    released: frozenset[tuple[str, str]] = frozenset()
    saved: SavedPlan | None = None
    deep: bool = False


class RunReport(NamedTuple):
    """What an applying run did: the plan made under the lock, the counts of its
    outcomes, and its id in `runs` (a tuple, so `plan, result, run_id = …` reads it)."""

    plan: Plan
    result: ApplyResult
    run_id: int


@dataclass
class Syncer:
    """A configured syncd: ledger, sources, targets and a clock."""

    config: Config
    ledger: Ledger
    sources: dict[str, Source]
    targets: dict[str, Target]
    clock: Clock = utc_now
    vault: TemplateVault | None = None
    """The ledger's encrypted templates (None: no [templates] key configured)."""
    applied: Reading | None = None
    """The reading the last `apply` of this syncer acted on (None: none yet)."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        only_targets: frozenset[str] | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Clock = utc_now,
    ) -> Syncer:
        """Open the ledger (schema checked, template and PIN keys checked against it) and
        build the configured sources and targets."""
        ledger = Ledger.open(config.ledger.url)
        try:
            vault = open_vault(config, ledger.db)
            ledger.pins = open_pins(config, ledger.db)
        except BaseException:
            ledger.close()
            raise
        targets = build_targets(
            config,
            only=only_targets,
            transports=transports,
            templates=template_loader(vault) if vault is not None else None,
            lock_memos=lambda name: LedgerLockMemo(ledger, name),
            template_digest=vault.digest if vault is not None else None,
        )
        return cls(config, ledger, build_sources(config), targets, clock, vault)

    @property
    def recorder(self) -> Recorder:
        """What records this syncer's runs (`engine.recorder`)."""
        return Recorder(self.config, self.ledger, self.clock)

    def close(self) -> None:
        """Release the ledger's connections."""
        self.ledger.close()

    def read(self, *, allow_shrink: bool = False, full: bool | None = None) -> Reading:
        """Read every source now (`reader.read_sources`); raise SourceRefused for a read
        that looks wrong."""
        options = ReadOptions(full=full, allow_shrink=allow_shrink)
        now = self.clock()
        return read_sources(self.config, self.ledger, self.sources, self.vault, now, options)

    def wants_full(self, name: str, cursor: str | None) -> bool:
        """Return whether source `name` is due a full read now (`reader.wants_full`)."""
        return wants_full(self.config, self.ledger, name, cursor, self.clock())

    def plan(
        self,
        reading: Reading,
        *,
        allow_deletes: int | None = None,
        released: frozenset[tuple[str, str]] = frozenset(),
        deep: bool = False,
        findings: bool = False,
    ) -> Plan:
        """Return the plan for `reading` against the ledger (`planner.make_plan`)."""
        options = PlanOptions(allow_deletes, released, deep, findings)
        return make_plan(self.config, self.ledger, self.targets, reading, options)

    def next_boundary(self) -> datetime | None:
        """Return the first instant after now at which time alone changes someone's access
        (`engine.access`), among the people the last apply acted on (else those the ledger
        holds); None if there is none."""
        ahead = timedelta(days=self.config.access.create_ahead_days)
        if self.applied is not None:  # what the last apply saved: no need to load it again
            return next_boundary(self.applied.desired.people.values(), self.clock(), ahead)
        stored = self.ledger.load_people()
        people = (p.person for p in stored.values() if p.gone_since is None)
        return next_boundary(people, self.clock(), ahead)

    def fingerprint(self, reading: Reading) -> dict[str, str]:
        """Return the aggregate digests of source and ledger a saved plan is checked by."""
        desired = reading.desired
        stored = self.ledger.load_people()
        return fingerprint(desired.people, desired.gone, stored, self.ledger.load_held(),
                           self.ledger.record_digest)  # fmt: skip

    def report_context(
        self, reading: Reading, plan: Plan, config_file: str = "", title: str = DRY_RUN_TITLE
    ) -> ReportContext:
        """Return what a report of `plan` says besides the plan: the config file, the
        sources read and when, the site's zone, and each planned person as the ledger
        stored them and as the source gives them now (their names and HR-level values).
        Call it before an apply saves the people (`before_apply` does)."""
        keys = {a.person_key for a in plan.actions}
        stored = self.ledger.load_people(keys) if keys else {}
        people = reading.desired.people
        prefetch(people, keys)
        who = {
            key: Who(stored[key].person if key in stored else None, people.get(key)) for key in keys
        }
        return ReportContext(
            config=config_file,
            time_zone=self.config.access.time_zone,
            sources=dict(reading.started),
            who=who,
            title=title,
        )

    def record_dry_run(
        self, plan: Plan, trigger: str = "cli", problems: Sequence[SourceProblem] = ()
    ) -> int:
        """Record a dry run in `runs` and its `problems` (nothing else); return its id."""
        return self.recorder.record_dry_run(plan, trigger, problems, self.clock())

    def apply(
        self,
        options: ApplyOptions = ApplyOptions(),
        *,
        progress: Progress | None = None,
        before_apply: Callable[[Plan], bool] | None = None,
        stop: threading.Event | None = None,
    ) -> RunReport:
        """Under the run lock: read, plan, apply, record; return the run's report.

        `before_apply` sees the plan made under the lock and may return False to stop
        (nothing is then applied; the run is recorded as cancelled). `stop` (default:
        this thread's, `engine.stopping`), once set (SIGTERM, Ctrl-C, a job's deadline),
        cancels the requests in flight: the run is recorded as "interrupted" with the
        counts it reached and what was not done is left for the next run; so is a run
        that an error ends before its outcomes are recorded (with the counts its recorded
        changes give). A run an earlier process left "running" (killed) is marked
        interrupted first (`ledger.deadruns`).
        """
        self.check_secrets()
        with run_lock(self.ledger.db, wait_s=options.wait_lock_s):
            close_dead_runs(self.ledger.db)
            reading = self.read(allow_shrink=options.allow_shrink, full=options.full)
            self.applied = reading
            plan = self._plan_to_apply(reading, options)
            recorder = self.recorder
            run_id = recorder.start(options.trigger, reading)
            with recorder.interrupted_on_error(run_id):
                if before_apply is not None and not before_apply(plan):
                    recorder.cancelled(run_id)
                    return RunReport(plan, ApplyResult(), run_id)
                recorder.save_people(reading)
                record_released(self.ledger.db, run_id, plan, reading.now,
                                options.allow_deletes, options.released)  # fmt: skip
                stop = stop if stop is not None else stopping.current()
                applier = Applier(
                    self.ledger, run_id, self.config.apply, self.clock, progress, stop
                )
                result = asyncio.run(applier.run(plan, self.targets))
                for name, error in plan.unobserved.items():  # a target-level failure too
                    result.errors.setdefault(name, f"observation failed: {error}")
                recorder.finish(run_id, plan, result, reading, stopping.reason_of(applier.stop))
                if self._left_in_step(plan, result, options):
                    mark = instep.fingerprint(self.config, self.targets, reading.desired)
                    instep.mark(self.ledger, run_id, reading.now, mark, self.clock())
            days = timedelta(days=self.config.safety.delete_after_days)
            purge_gone(self.ledger.db, delete_after=days, now=reading.now, run_id=run_id)
            return RunReport(plan, result, run_id)

    def _left_in_step(self, plan: Plan, result: ApplyResult, options: ApplyOptions) -> bool:
        """True if this apply left every configured target in step with every person
        (`engine.instep`): every action of a plan made now over every target applied,
        nothing blocked, deferred or noted."""
        return (
            options.saved is None
            and set(self.targets) == set(self.config.targets)
            and not result.stopped
            and not result.errors
            and result.count(ActionOutcome.APPLIED) == len(plan.actions)
            and not plan.notes
            and not plan.blocked
            and not any(s.deferred for s in plan.summaries)
        )

    def _plan_to_apply(self, reading: Reading, options: ApplyOptions) -> Plan:
        """Return the plan an apply acts on: made now, or a saved one checked fresh."""
        plan_options = PlanOptions(
            options.allow_deletes, options.released, options.deep, findings=options.deep
        )
        plan = make_plan(self.config, self.ledger, self.targets, reading, plan_options)
        if options.saved is None:
            return plan
        check_fresh(options.saved, self.fingerprint(reading))
        restricted, _ = restrict_to(plan, options.saved.actions)
        return restricted

    def check_secrets(self) -> None:
        """Raise ConfigError, naming the setting, if a target's secret (a CLUe API key)
        cannot be read: a run refuses before it starts instead of failing every action."""
        for target in self.targets.values():
            if isinstance(target, NeedsSecrets):
                target.check_secrets()
