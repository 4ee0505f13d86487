"""Read-only questions for reports: run history, per-target status, one person's audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from syncd.ledger.schema import changes, runs, target_records


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


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Per target: records by state, and the last time an action was applied."""

    target: str
    held: int
    ok: int
    failed: int
    blocked: int
    last_applied: datetime | None


def history(engine: sa.Engine, limit: int) -> list[RunRow]:
    """Return the newest `limit` runs, newest first."""
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [
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
    with engine.connect() as conn:
        states: dict[tuple[str, str], int] = {(t, s): n for t, s, n in conn.execute(by_state)}
        held = {t: n for t, n in conn.execute(held_q)}
        last = {t: at for t, at in conn.execute(last_q)}
    return [
        TargetStatus(
            target=t,
            held=held.get(t, 0),
            ok=states.get((t, "ok"), 0),
            failed=states.get((t, "failed"), 0),
            blocked=states.get((t, "blocked"), 0),
            last_applied=last.get(t),
        )
        for t in targets
    ]
