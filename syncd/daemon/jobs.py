"""The daemon's job table: what each job runs and when.

    reconcile       Syncer.apply(trigger="daemon")              every reconcile_every_s or cron
    deep_reconcile  Syncer.apply(trigger="daemon", deep=True)   deep_reconcile_cron (nightly)
    backfill        syncd.engine.backfill.backfill              every backfill_every_s
    events          syncd.engine.events.collect_events          every events_every_s
    device_clock    syncd.engine.clock.set_device_clocks        device_clock_cron (daily)

In `[daemon] mode = "plan"` both reconciles only plan (`daemon.planonly`: a dry run and
its stored report, applied later by `syncd approve RUN_ID`); backfill and device_clock,
which write to terminals, are not scheduled and cannot be triggered; events (a read of
the terminals' logs) runs as in apply mode.

Wiring a new job is one row of `JOBS`. An engine function is called as
`fn(engine, trigger=…, stop=…)`, each keyword passed only when its signature takes it,
under the ledger's run lock (`run_job`): every job locks terminals, and no other syncd
process may hold terminal sessions on the same ledger meanwhile (the lock is re-entrant,
so `Syncer.apply` taking it again costs nothing). Schedules of 0 seconds or an
empty cron turn a job off; backfill reports "skipped" on a site without a template key.
A reconcile whose sources had defective records logs the warning "source records
skipped" with their count and reports the outcome "source_problems" instead of "ok"; one
whose removals a cap blocked logs the warning "removals blocked by a safety cap" (what,
and the approve command) and reports "blocked".
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apscheduler.triggers.base import BaseTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from syncd.config import DaemonConfig
from syncd.daemon import planonly
from syncd.engine.backfill import backfill
from syncd.engine.clock import set_device_clocks
from syncd.engine.events import collect_events
from syncd.engine.recorder import run_outcome
from syncd.engine.run import ApplyOptions, Syncer
from syncd.errors import ConfigError
from syncd.ledger.runlock import run_lock
from syncd.model import ActionOutcome, RunOutcome
from syncd.sources.base import SourceProblem

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]
Schedule = Callable[[DaemonConfig], tuple[float, str]]


@dataclass(frozen=True)
class JobResult:
    """What a job reports: its ledger run id (if it made one), outcome and a summary."""

    outcome: str
    run_id: int | None = None
    summary: str = ""
    changes_run: int | None = None
    problems: tuple[SourceProblem, ...] | None = None
    """The defective source records the job met (None: it read no source)."""


@dataclass(frozen=True)
class JobDef:
    """One row of the job table: a name, the engine function it runs, and its schedule."""

    name: str
    function: JobFunction
    schedule: Schedule
    in_plan_mode: bool = True
    """False for a job that writes to terminals other than by a reconcile: it does not
    run in `[daemon] mode = "plan"`, where nothing changes without approval."""


def _reconcile(
    engine: Syncer, *, trigger: str, stop: threading.Event, deep: bool = False
) -> JobResult:
    if engine.config.daemon.mode == "plan":
        return _plan_reconcile(engine, trigger=trigger, stop=stop, deep=deep)
    plan, result, run_id = engine.apply(ApplyOptions(trigger=trigger, deep=deep), stop=stop)
    applied, failed = result.count(ActionOutcome.APPLIED), result.count(ActionOutcome.FAILED)
    problems = engine.applied.problems if engine.applied is not None else ()
    planonly.after_apply(engine, run_id, plan, problems)
    outcome = _with_problems(_job_outcome(run_outcome(plan, result)), problems, run_id)
    summary = f"{applied} applied, {failed} failed, {plan.blocked} blocked"
    summary += f", {len(problems)} source record(s) skipped" if problems else ""
    return JobResult(outcome, run_id, summary, changes_run=run_id, problems=problems)


def _plan_reconcile(
    engine: Syncer, *, trigger: str, stop: threading.Event, deep: bool
) -> JobResult:
    """The reconcile of `[daemon] mode = "plan"`: plan, store, notify; apply nothing."""
    outcome, run_id, plan, problems = planonly.plan_only(
        engine, trigger=trigger, stop=stop, deep=deep
    )
    outcome = _with_problems(outcome, problems, run_id)
    summary = f"planned: {plan.pending} pending, {plan.blocked} blocked"
    summary += f", {len(problems)} source record(s) skipped" if problems else ""
    return JobResult(outcome, run_id, summary, problems=problems)


def _with_problems(outcome: str, problems: Sequence[SourceProblem], run_id: int) -> str:
    """Warn of the source records a reconcile skipped; return its outcome ("ok" becomes
    "source_problems"; a worse outcome stays)."""
    if not problems:
        return outcome
    by_decision = Counter(str(p.decision) for p in problems)
    shown = ",".join(f"{d}:{n}" for d, n in sorted(by_decision.items()))
    log.warning(
        "source records skipped",
        extra={"count": len(problems), "run": run_id, "decisions": shown},
    )
    return "source_problems" if outcome == "ok" else outcome


def _job_outcome(run: RunOutcome) -> RunOutcome:
    """Return a reconcile job's outcome: its run's, but a job with any failed action
    failed (partial or not)."""
    return RunOutcome.FAILED if run is RunOutcome.PARTIAL else run


def _backfill(engine: Syncer, *, trigger: str) -> Any:
    if engine.config.templates is None:
        return JobResult("skipped", summary="no [templates] key configured")
    return backfill(engine, trigger=trigger)


JOBS: tuple[JobDef, ...] = (
    JobDef("reconcile", _reconcile, lambda d: (d.reconcile_every_s, d.reconcile_cron)),
    JobDef(
        "deep_reconcile",
        functools.partial(_reconcile, deep=True),
        lambda d: (0, d.deep_reconcile_cron),
    ),
    JobDef("backfill", _backfill, lambda d: (d.backfill_every_s, ""), in_plan_mode=False),
    JobDef("events", collect_events, lambda d: (d.events_every_s, "")),
    JobDef(
        "device_clock",
        set_device_clocks,
        lambda d: (0, d.device_clock_cron),
        in_plan_mode=False,
    ),
)
JOB_NAMES = tuple(job.name for job in JOBS)


def runs_in_mode(name: str, config: DaemonConfig) -> bool:
    """Return whether job `name` runs in `config`'s mode (plan mode: no terminal writes)."""
    return config.mode != "plan" or next(j.in_plan_mode for j in JOBS if j.name == name)


def available_jobs() -> dict[str, JobFunction]:
    """Return name → function for every job of the table."""
    return {job.name: job.function for job in JOBS}


def make_trigger(every_s: float, cron: str) -> BaseTrigger | None:
    """Return the trigger for a schedule (cron wins), None when the job is off.

    Raise ConfigError if the cron line does not parse.
    """
    if cron:
        try:
            return CronTrigger.from_crontab(cron)
        except ValueError as exc:
            raise ConfigError(f"bad cron line {cron!r}: {exc}") from None
    if every_s > 0:
        return IntervalTrigger(seconds=every_s)
    return None


def triggers(config: DaemonConfig) -> dict[str, BaseTrigger]:
    """Return job name → trigger for every job switched on in `config`.

    Raise ConfigError listing every bad cron line (so a SIGHUP reload can refuse it).
    """
    result: dict[str, BaseTrigger] = {}
    problems: list[str] = []
    for job in JOBS:
        if not runs_in_mode(job.name, config):
            continue
        every_s, cron = job.schedule(config)
        try:
            trigger = make_trigger(every_s, cron)
        except ConfigError as exc:
            problems.append(f"daemon ({job.name}): {exc}")
            continue
        if trigger is not None:
            result[job.name] = trigger
    if problems:
        raise ConfigError("\n".join(problems))
    return result


def run_job(
    function: JobFunction, engine: Syncer, *, trigger: str, stop: threading.Event
) -> JobResult:
    """Call the job under the ledger's run lock (see `call_job`); raise RunLockBusy if
    another syncd process holds it."""
    with run_lock(engine.ledger.db):
        return call_job(function, engine, trigger=trigger, stop=stop)


def call_job(
    function: JobFunction, engine: Syncer, *, trigger: str, stop: threading.Event
) -> JobResult:
    """Call an engine function with the keywords it accepts; return its JobResult.

    A function that returns something else gets "ok" with its value (cut) as summary.
    """
    offered: dict[str, Any] = {"trigger": trigger, "stop": stop}
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs = {k: v for k, v in offered.items() if takes_any or k in parameters}
    value = function(engine, **kwargs)
    if isinstance(value, JobResult):
        return value
    if isinstance(value, Mapping) and all(hasattr(v, "ok") for v in value.values()):
        failed = sorted(str(k) for k, v in value.items() if not v.ok)
        shown = f"; failed: {', '.join(failed)}" if failed else ""
        summary = f"{len(value) - len(failed)} ok, {len(failed)} failed{shown}"
        return JobResult("failed" if failed else "ok", summary=summary)
    run_id = getattr(value, "run_id", None)
    summary = "" if value is None else str(value)[:200]
    return JobResult("ok", run_id if isinstance(run_id, int) else None, summary)
