"""One reconcile, as the CLI and the daemon run it: read → guard → plan → (apply).

`Engine.read` reads every source — in full, or only what changed since the source's
cursor (a delta) — and refuses a full read that looks wrong (empty or shrunk beyond
`safety.max_source_shrink` while the ledger holds people; a delta is partial by nature
and exempt). Left to decide, it reads in full when a source has no cursor or its last
full read (cursor `source:NAME:full_at`) is older than `full_read_every_h`: only a full
read finds people deleted from the source. `Engine.plan` is the
pure plan plus the removal caps. `Engine.apply` takes the run lock, re-reads and
re-plans under it (so it never acts on a stale view), records the run, the records the
sources skipped, the people and every action's outcome, and only then moves source
cursors. A dry run writes nothing but its own `runs` row and its skipped records.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from syncd.config import Config
from syncd.engine import stopping
from syncd.engine.access import next_boundary, upcoming_on_targets
from syncd.engine.apply import Applier, ApplyResult, Progress
from syncd.engine.capping import cap_removals, record_released
from syncd.engine.cards import with_card_moves
from syncd.engine.deep import DeepView, look, record_orphans, with_orphan_deletes
from syncd.engine.defects import disabled_people
from syncd.engine.enrollments import open_vault, template_loader
from syncd.engine.factory import build_sources, build_targets
from syncd.engine.health import record_health, resting_targets
from syncd.engine.narrow import defer_targets, restrict_to
from syncd.engine.people import Who
from syncd.engine.plan import Desired, Policy, compute_plan, with_held_records
from syncd.engine.report import DRY_RUN_TITLE, ReportContext
from syncd.engine.saved import SavedPlan, check_fresh, fingerprint
from syncd.errors import SourceError, SourceRefused, cut
from syncd.ledger.deadruns import close_dead_runs, run_counts
from syncd.ledger.lockmemo import LedgerLockMemo
from syncd.ledger.pinkey import open_pins
from syncd.ledger.purge import purge_gone
from syncd.ledger.runlock import run_lock
from syncd.ledger.runproblems import record_problems
from syncd.ledger.store import Ledger, StoredPerson
from syncd.ledger.templates import TemplateVault
from syncd.model import Boundary, Person, Plan
from syncd.sources.base import Source, SourceProblem, SourceRead
from syncd.targets.base import NeedsSecrets, Target

if TYPE_CHECKING:
    import httpx  # for annotations only: the HTTP stack loads with a target kind

log = logging.getLogger(__name__)

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
    started: Mapping[str, datetime] = field(default_factory=dict)
    """When each source's read began: a full read's `full_at` once committed."""

    @property
    def problems(self) -> tuple[SourceProblem, ...]:
        """Every defective record the sources met (held, disabled or skipped)."""
        return tuple(p for read in self.reads.values() for p in read.problems)


@dataclass
class Engine:
    """A configured syncd: ledger, sources, targets and a clock."""

    config: Config
    ledger: Ledger
    sources: dict[str, Source]
    targets: dict[str, Target]
    clock: Clock = utc_now
    vault: TemplateVault | None = None
    """The ledger's encrypted templates (None: no [templates] key configured)."""
    applied: Reading | None = None
    """The reading the last `apply` of this engine acted on (None: none yet)."""

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        only_targets: frozenset[str] | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Clock = utc_now,
    ) -> Engine:
        """Open the ledger (schema checked, template and PIN keys checked against it) and
        build the configured sources and targets."""
        ledger = Ledger.open(config.ledger.url)
        try:
            vault = open_vault(config, ledger.engine)
            ledger.pins = open_pins(config, ledger.engine)
        except BaseException:
            ledger.close()
            raise
        loader = template_loader(vault) if vault is not None else None
        targets = build_targets(
            config,
            only=only_targets,
            transports=transports,
            templates=loader,
            lock_memos=lambda name: LedgerLockMemo(ledger, name),
            template_digest=vault.digest if vault is not None else None,
        )
        return cls(config, ledger, build_sources(config), targets, clock, vault)

    def close(self) -> None:
        """Release the ledger's connections."""
        self.ledger.close()

    def read(self, *, allow_shrink: bool = False, full: bool | None = None) -> Reading:
        """Read every source; raise SourceRefused for a read that looks wrong.

        `full=True` reads every source in full, False asks each for a delta since its
        cursor (a source without a cursor still reads in full), None decides per source
        (`wants_full`). Nothing is written but the sealing of PINs left in clear
        (`Ledger.seal_pins`): cursors move only in `apply`, after commit.
        """
        self.ledger.seal_pins()  # digests keyed under the current key before any compare
        stored = self.ledger.load_people()
        reads: dict[str, SourceRead] = {}
        started: dict[str, datetime] = {}
        for name, source in self.sources.items():
            cursor = self.ledger.get_cursor(f"source:{name}")
            started[name] = self.clock()
            wanted = self.wants_full(name, cursor) if full is None else full
            read = source.read(cursor=cursor, full=wanted)
            self._guard(name, read, stored, allow_shrink)
            reads[name] = read
        return dataclasses.replace(self._desired(reads, stored), started=started)

    def wants_full(self, name: str, cursor: str | None) -> bool:
        """Return whether source `name` is due a full read (see the module docstring)."""
        if cursor is None:
            return True
        config = self.config.sources.get(name)
        every_h = float(getattr(config, "full_read_every_h", 0.0))
        last = _parse_time(self.ledger.get_cursor(f"source:{name}:full_at"))
        if every_h <= 0 or last is None:
            return True
        return self.clock() - last >= timedelta(hours=every_h)

    def _guard(
        self, name: str, read: SourceRead, stored: Mapping[str, StoredPerson], allow_shrink: bool
    ) -> None:
        if not read.complete:
            # A delta names only who changed: neither empty nor small says anyone left.
            return
        held = sum(1 for p in stored.values() if p.source == name and p.gone_since is None)
        seen = len(read.people) + len(read.held) + len(read.disabled)
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
        enrolled = self.vault.enrollments() if self.vault is not None else {}
        desired = Desired(people, gone, enrolled, self.ledger.record_digest)
        return Reading(desired, reads, newly_gone)

    def plan(
        self,
        reading: Reading,
        *,
        allow_deletes: int | None = None,
        released: frozenset[tuple[str, str]] = frozenset(),
        deep: bool = False,
        findings: bool = False,
    ) -> Plan:
        """Return the plan for `reading` against the ledger, removal caps applied.

        `released` (target, person) removals were approved and escape the caps. Actions of
        a quarantined target are deferred until its slow retry time comes. Each target's
        actions come in apply order, cards freed before given (`engine.cards`). With `deep`,
        the targets are observed first and the plan repairs their drift (`engine.deep`);
        with `findings` too, the orphans found are recorded in the ledger.
        """
        safety = self.config.safety
        policy = Policy(
            delete_after=timedelta(days=safety.delete_after_days),
            protected_keys=frozenset(safety.protected_keys),
            create_ahead=timedelta(days=self.config.access.create_ahead_days),
        )
        # A deep plan compares whole records; an ordinary one needs only digests and
        # fetches the records behind its actions afterwards (a million rows stay light).
        held = self.ledger.load_held(with_records=deep)
        view = look(self.targets, held, reading.desired) if deep else None
        targets = list(self.targets.values())
        plan = compute_plan(
            reading.desired,
            targets,
            view.held if view else held,
            policy,
            self.clock(),
            diff_fields=view is not None,
        )
        records = {}
        if view is None:
            keys = [(a.target, a.person_key) for a in plan.actions if a.before_digest]
            records = self.ledger.load_records(keys)
            plan = with_held_records(plan, records, targets)
        if view is not None:
            plan = self._with_deep_view(plan, view, policy, findings)
        capped = cap_removals(plan, held, safety, self.ledger.engine, self.clock(),
                              allow_deletes=allow_deletes, released=released)  # fmt: skip
        resting = resting_targets(self.ledger.engine, self.targets, now=self.clock(),
                                  retry_s=self.config.apply.quarantine_retry_s)  # fmt: skip
        deferred = defer_targets(capped, resting, "quarantined: retried slowly")
        moved = with_card_moves(deferred, self.targets, view.held if view else held, records,
                                self.ledger.load_records, self.ledger.record_digest)  # fmt: skip
        return dataclasses.replace(moved, upcoming=self.upcoming(reading.desired))

    def upcoming(self, desired: Desired) -> tuple[Boundary, ...]:
        """Return the access boundaries of the next `access.upcoming_days` (for reports)."""
        access, now = self.config.access, self.clock()
        until = now + timedelta(days=access.upcoming_days)
        ahead = timedelta(days=access.create_ahead_days)
        targets = list(self.targets.values())
        found = upcoming_on_targets(desired.people.values(), targets, now, until, ahead)
        zone = ZoneInfo(access.time_zone)
        return tuple(dataclasses.replace(b, at=b.at.astimezone(zone)) for b in found)

    def _with_deep_view(self, plan: Plan, view: DeepView, policy: Policy, findings: bool) -> Plan:
        """Add the orphan deletes (targets with orphans = "delete") and the deep notes."""
        deleting = {
            name for name, c in self.config.targets.items()
            if getattr(c, "orphans", "report") == "delete"
        }  # fmt: skip
        if findings:
            record_orphans(self.ledger.engine, view, self.clock())
        plan = with_orphan_deletes(plan, view, self.targets, deleting, policy.protected_keys,
                                   self.ledger.record_digest)  # fmt: skip
        return dataclasses.replace(plan, notes=(*plan.notes, *view.notes(deleting)))

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
        stored = self.ledger.load_people() if keys else {}
        people = reading.desired.people
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
        now = self.clock()
        run_id = self.ledger.start_run(kind="plan", trigger=trigger, dry_run=True, now=now)
        record_problems(self.ledger.engine, run_id, problems)
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
        full: bool | None = None,
        stop: threading.Event | None = None,
        released: frozenset[tuple[str, str]] = frozenset(),
        saved: SavedPlan | None = None,
        deep: bool = False,
    ) -> tuple[Plan, ApplyResult, int]:
        """Under the run lock: read, plan, apply, record. Return (plan, result, run id).

        `before_apply` sees the plan made under the lock and may return False to stop
        (nothing is then applied; the run is recorded as cancelled). `stop` (default:
        this thread's, `engine.stopping`), once set (SIGTERM, Ctrl-C, a job's deadline),
        cancels the requests in flight: the run is recorded as "interrupted" with the
        counts it reached and what was not done is left for the next run; so is a run
        that an error ends before its outcomes are recorded (with the counts its recorded
        changes give). A run an earlier process left "running" (killed) is marked
        interrupted first (`ledger.deadruns`). `released` are
        approved removals (see `plan`). With `saved`, raise PlanStale unless source and
        ledger are as they were when it was made, and apply only its actions. With `deep`,
        the plan repairs what the targets really hold and records orphans (see `plan`).
        """
        self.check_secrets()
        with run_lock(self.ledger.engine, wait_s=wait_lock_s):
            close_dead_runs(self.ledger.engine)
            reading = self.read(allow_shrink=allow_shrink, full=full)
            self.applied = reading
            plan = self.plan(
                reading, allow_deletes=allow_deletes, released=released, deep=deep, findings=deep
            )
            if saved is not None:
                check_fresh(saved, self.fingerprint(reading))
                plan, _ = restrict_to(plan, saved.actions)
            run_id = self.ledger.start_run(
                kind="apply", trigger=trigger, dry_run=False, now=self.clock()
            )
            with self._interrupted_on_error(run_id):
                record_problems(self.ledger.engine, run_id, reading.problems)
                if before_apply is not None and not before_apply(plan):
                    self.ledger.finish_run(run_id, outcome="cancelled", counts={}, now=self.clock())
                    return plan, ApplyResult(), run_id
                self._save_people(reading)
                record_released(
                    self.ledger.engine, run_id, plan, self.clock(), allow_deletes, released
                )
                applier = Applier(
                    self.ledger,
                    run_id,
                    self.config.apply,
                    self.clock,
                    progress,
                    stop=stop if stop is not None else stopping.current(),
                )
                result = asyncio.run(applier.run(plan, self.targets))
                self._finish(run_id, plan, result, reading, stopping.reason_of(applier.stop))
            days = timedelta(days=self.config.safety.delete_after_days)
            purge_gone(self.ledger.engine, delete_after=days, now=self.clock(), run_id=run_id)
            return plan, result, run_id

    def check_secrets(self) -> None:
        """Raise ConfigError, naming the setting, if a target's secret (a CLUe API key)
        cannot be read: a run refuses before it starts instead of failing every action."""
        for target in self.targets.values():
            if isinstance(target, NeedsSecrets):
                target.check_secrets()

    @contextlib.contextmanager
    def _interrupted_on_error(self, run_id: int) -> Iterator[None]:
        """Record run `run_id` as interrupted if the block raises (best effort: the ledger
        may be what failed), so that no run stays "running"; the error goes on."""
        try:
            yield
        except BaseException as exc:
            try:
                self.ledger.finish_run(
                    run_id, outcome="interrupted", counts=run_counts(self.ledger.engine, run_id),
                    now=self.clock(), message=cut(f"{type(exc).__name__}: {exc}"),
                )  # fmt: skip
            except Exception:
                log.debug("run %s not marked interrupted", run_id, exc_info=True)
            raise

    def _save_people(self, reading: Reading) -> None:
        now = self.clock()
        for name, read in reading.reads.items():
            seen = dict(read.people)
            # Disabled by a defective record: stored so, so that a later record that is
            # only held ("nothing changes") keeps them disabled instead of restoring them.
            present = reading.desired.people
            seen.update((k, present[k]) for k in read.disabled if k in present)
            self.ledger.save_people(name, seen, reading.newly_gone.get(name, frozenset()), now)

    def _finish(
        self, run_id: int, plan: Plan, result: ApplyResult, reading: Reading, why: str = ""
    ) -> None:
        failed = result.count("failed")
        outcome = (
            "failed" if failed and not result.count("applied") else "partial" if failed else "ok"
        )
        if plan.blocked and outcome == "ok":
            outcome = "blocked"
        if result.stopped:
            outcome = "interrupted"
        message = "; ".join(f"{t}: {e}" for t, e in sorted(result.errors.items())) or None
        if result.stopped:
            message = f"interrupted: {why}" + (f"; {message}" if message else "")
        self.ledger.finish_run(
            run_id, outcome=outcome, counts=result.as_counts(), now=self.clock(), message=message
        )
        record_health(self.ledger.engine, plan, result, now=self.clock(),
                      quarantine_after=self.config.apply.quarantine_after)  # fmt: skip
        if not result.stopped:
            self._move_cursors(reading)

    def _move_cursors(self, reading: Reading) -> None:
        # Only once the people and every outcome are committed may the cursors move: a
        # crash before this re-reads the same changes, never skips them.
        for name, read in reading.reads.items():
            if read.cursor is not None:
                self.ledger.set_cursor(f"source:{name}", read.cursor, self.clock())
            if read.complete and name in reading.started:
                started = reading.started[name].isoformat()
                self.ledger.set_cursor(f"source:{name}:full_at", started, self.clock())


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
    present.update(disabled_people(read.disabled, stored))
    return present


def _parse_time(text: str | None) -> datetime | None:
    """Return a stored ISO timestamp as an aware datetime (UTC if naive); None if unusable."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None  # unreadable: treated as "never", so the next read is full
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _summary_counts(summary: object) -> dict[str, int]:
    fields = ("create", "update", "disable", "delete", "blocked", "unchanged", "deferred")
    return {name: int(getattr(summary, name)) for name in fields}
