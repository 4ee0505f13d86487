"""What a reconcile tells a person: the plan-only reconcile, and blocked removals.

`[daemon] mode = "plan"`: the reconcile reads and plans (caps applied, `deep` as the job
has it) under the run lock, records a dry run, stores its report (JSON with the
fingerprint + HTML, `engine.stored`) and applies nothing: `syncd approve RUN_ID` applies
exactly that plan, or refuses it as stale (exit 6). Its outcome is "ok" (in step),
"pending" (changes await approval) or "blocked" (removals held by a cap).

In either mode, a run whose removals a cap blocked is logged at WARNING with what was
blocked and the command that approves it. A run worth a person's attention (plan mode:
changes pending or removals blocked; apply mode: removals blocked) is notified through
`[notify]` (`daemon.alerts`); storing or notifying may fail without failing the job.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence

from syncd.daemon.alerts import Notice, send_notice
from syncd.engine import report
from syncd.engine.report import ReportContext
from syncd.engine.run import Syncer
from syncd.engine.stored import StoredReport, reports_directory, store_report
from syncd.model import Plan
from syncd.sources.base import SourceProblem

log = logging.getLogger(__name__)

SHOWN_BLOCKED = 10
"""Blocked actions named in the warning line; the rest are counted."""


def plan_only(
    engine: Syncer, *, trigger: str, stop: threading.Event, deep: bool = False
) -> tuple[str, int, Plan, tuple[SourceProblem, ...]]:
    """Plan without applying; record the dry run, store its report, tell who must know.

    Return (outcome, run id, plan, source problems). The caller holds the run lock
    (`jobs.run_job`), so the fingerprint stored is that of the state planned from.
    `stop` is honoured by the reads and the deep look through `engine.stopping`.
    """
    del stop  # the reads and the deep look follow this thread's stop (engine.stopping)
    reading = engine.read()
    plan = engine.plan(reading, deep=deep)
    problems = reading.problems
    run_id = engine.record_dry_run(plan, trigger=trigger, problems=problems)
    context = engine.report_context(
        reading, plan, title=f"syncd plan awaiting approval (run {run_id})"
    )
    stored = _store(
        engine,
        run_id,
        plan,
        problems,
        with_fingerprint=engine.fingerprint(reading),
        context=context,
    )
    outcome = "blocked" if plan.blocked else "pending" if plan.runnable() else "ok"
    fields: dict[str, object] = {"run": run_id, "pending": plan.pending, "blocked": plan.blocked}
    if stored is not None:
        fields["report"] = str(stored.html_path)
    if outcome == "blocked":
        warn_blocked(run_id, plan)
    elif outcome == "pending":
        log.info("plan awaits approval", extra={**fields, "approve": f"syncd approve {run_id}"})
    if outcome != "ok":
        notify(engine, run_id, plan, problems, stored, planned=True)
    return outcome, run_id, plan, problems


def after_apply(engine: Syncer, run_id: int, plan: Plan, problems: Sequence[SourceProblem]) -> None:
    """After an applying reconcile: if removals were blocked, warn, store the report
    (no fingerprint: not a plan to approve as such) and notify."""
    if not plan.blocked:
        return
    warn_blocked(run_id, plan)
    stored = _store(engine, run_id, plan, problems, with_fingerprint=None)
    notify(engine, run_id, plan, problems, stored, planned=False)


def warn_blocked(run_id: int, plan: Plan) -> None:
    """Log at WARNING which removals a cap blocked in run `run_id`, and how to approve."""
    blocked = [a for a in plan.actions if a.blocked is not None]
    shown = [f"{a.target}:{a.person_key}:{a.op.value}" for a in blocked[:SHOWN_BLOCKED]]
    more = len(blocked) - len(shown)
    log.warning(
        "removals blocked by a safety cap",
        extra={
            "run": run_id,
            "outcome": "blocked",
            "count": plan.blocked,
            "blocked": ",".join(shown) + (f",+{more} more" if more > 0 else ""),
            "reasons": ",".join(sorted({str(a.blocked) for a in blocked})),
            "approve": f"syncd approve {run_id}",
        },
    )


def _store(
    engine: Syncer,
    run_id: int,
    plan: Plan,
    problems: Sequence[SourceProblem],
    with_fingerprint: dict[str, str] | None,
    context: ReportContext | None = None,
) -> StoredReport | None:
    directory = reports_directory(engine.config)
    keep = engine.config.daemon.reports_keep
    try:
        return store_report(directory, run_id, plan, problems, with_fingerprint, keep, context)
    except OSError as exc:
        log.warning(
            "report not stored",
            extra={"run": run_id, "directory": str(directory), "error": str(exc)},
        )
        return None


def notify(
    engine: Syncer,
    run_id: int,
    plan: Plan,
    problems: Sequence[SourceProblem],
    stored: StoredReport | None,
    *,
    planned: bool,
) -> None:
    """Send the notice of run `run_id` through `[notify]` (nothing when it is off, or when
    the report lists the same actions as the one stored before: told already)."""
    if not engine.config.notify.enabled:
        return
    if stored is not None and stored.same_as is not None:
        log.info("not notified again", extra={"run": run_id, "same_as_run": stored.same_as})
        return
    send_notice(engine.config.notify, make_notice(run_id, plan, problems, stored, planned))


def make_notice(
    run_id: int,
    plan: Plan,
    problems: Sequence[SourceProblem],
    stored: StoredReport | None,
    planned: bool,
) -> Notice:
    """Return the notice of a run: subject, plain-text summary and report."""
    host = socket.gethostname()
    needs = []
    if planned and plan.pending:
        needs.append(f"{plan.pending} change(s) await approval")
    if plan.blocked:
        needs.append(f"{plan.blocked} removal(s) blocked by a safety cap")
    subject = f"run {run_id} on {host}: " + ", ".join(needs or ["nothing to approve"])
    kind = "planned, nothing applied (plan-only mode)" if planned else "applied"
    lines = [f"syncd run {run_id} on {host}: {kind}.", ""]
    lines += [
        f"  {s.target}: " + ", ".join(f"{n}={getattr(s, n)}" for n in report.COUNT_FIELDS)
        for s in plan.summaries
    ]
    if problems:
        lines += ["", report.problems_line(problems)]
    lines += ["", "Review the report, then approve:", f"  syncd approve {run_id}"]
    if stored is not None:
        lines += ["", f"Report: {stored.html_path}", f"JSON:   {stored.json_path}"]
    return Notice(run_id, subject, "\n".join(lines) + "\n", stored)
