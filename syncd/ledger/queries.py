"""Read-only questions for reports: run history, per-target status, one person's audit."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from syncd.ledger.health import load_health
from syncd.ledger.runproblems import problem_counts
from syncd.ledger.schema import changes, findings, runs, target_records


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as `syncd history` shows it."""

    id: int
    kind: str
    trigger: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    counts: dict[str, Any]
    message: str | None
    skipped: int = 0
    """Defective source records the run met (`run_problems`)."""


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Per target: records by state, and the last time an action was applied."""

    target: str
    held: int
    ok: int
    failed: int
    blocked: int
    last_applied: datetime | None
    quarantined_since: datetime | None = None
    consecutive_failures: int = 0
    open_findings: int = 0


def history(engine: sa.Engine, limit: int) -> list[RunRow]:
    """Return the newest `limit` runs, newest first."""
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [
            RunRow(
                id=r.id,
                kind=r.kind,
                trigger=r.trigger,
                dry_run=r.dry_run,
                started_at=r.started_at,
                finished_at=r.finished_at,
                outcome=r.outcome,
                counts=json.loads(r.counts or "{}"),
                message=r.message,
            )
            for r in conn.execute(query)
        ]
    skipped = problem_counts(engine, [row.id for row in rows])
    return [dataclasses.replace(row, skipped=skipped.get(row.id, 0)) for row in rows]


def target_status(engine: sa.Engine, targets: list[str]) -> list[TargetStatus]:
    """Return the status of each named target (zeros for one the ledger has not seen)."""
    by_state = sa.select(target_records.c.target, target_records.c.state, sa.func.count()).group_by(
        target_records.c.target, target_records.c.state
    )
    held_q = (
        sa.select(target_records.c.target, sa.func.count())
        .where(target_records.c.digest.is_not(None))
        .group_by(target_records.c.target)
    )
    last_q = (
        sa.select(changes.c.target, sa.func.max(changes.c.at))
        .where(changes.c.outcome == "applied")
        .group_by(changes.c.target)
    )
    findings_q = (
        sa.select(findings.c.target, sa.func.count())
        .where(findings.c.resolved_at.is_(None))
        .group_by(findings.c.target)
    )
    with engine.connect() as conn:
        states: dict[tuple[str, str], int] = {(t, s): n for t, s, n in conn.execute(by_state)}
        held = {t: n for t, n in conn.execute(held_q)}
        last = {t: at for t, at in conn.execute(last_q)}
        open_findings = {t: n for t, n in conn.execute(findings_q)}
    health = load_health(engine)
    return [
        TargetStatus(
            target=t,
            held=held.get(t, 0),
            ok=states.get((t, "ok"), 0),
            failed=states.get((t, "failed"), 0),
            blocked=states.get((t, "blocked"), 0),
            last_applied=last.get(t),
            quarantined_since=health[t].quarantined_since if t in health else None,
            consecutive_failures=health[t].consecutive_failures if t in health else 0,
            open_findings=open_findings.get(t, 0),
        )
        for t in targets
    ]


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One audited action, as `syncd audit` shows it."""

    run_id: int
    target: str
    person_key: str
    op: str
    outcome: str
    before_digest: str | None
    after_digest: str | None
    error: str | None
    at: datetime


def audit(engine: sa.Engine, person_key: str, limit: int = 200) -> list[ChangeRow]:
    """Return everything that happened to one person across targets, oldest first."""
    query = (
        sa.select(changes)
        .where(changes.c.person_key == person_key)
        .order_by(changes.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [
            ChangeRow(
                r.run_id,
                r.target,
                r.person_key,
                r.op,
                r.outcome,
                r.before_digest,
                r.after_digest,
                r.error,
                r.at,
            )
            for r in conn.execute(query)
        ]
    return rows[::-1]


def run_exists(engine: sa.Engine, run_id: int) -> bool:
    """Return True if the ledger holds run `run_id`."""
    with engine.connect() as conn:
        return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None


def blocked_in_run(engine: sa.Engine, run_id: int) -> frozenset[tuple[str, str]]:
    """Return the (target, person) removals a run blocked and that are still blocked."""
    query = (
        sa.select(changes.c.target, changes.c.person_key)
        .join(
            target_records,
            sa.and_(
                target_records.c.target == changes.c.target,
                target_records.c.person_key == changes.c.person_key,
            ),
        )
        .where(changes.c.run_id == run_id, changes.c.outcome == "blocked")
        .where(target_records.c.state == "blocked")
    )
    with engine.connect() as conn:
        return frozenset((t, k) for t, k in conn.execute(query))
