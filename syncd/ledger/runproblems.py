"""The source records each run skipped, stored with the run (`run_problems`).

An apply and a dry run both write the problems of the read they acted on, so `syncd
history`, the reports and the daemon's metric all name the same records. A problem
holds where the record is, the field, the reason and the decision; the reason quotes a
bad value only when it is not a PIN (the mapping's rule), so no secret is stored here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import sqlalchemy as sa

from syncd.ledger.schema import run_problems
from syncd.sources.base import Decision, SourceProblem

KEEP_RUNS = 2000
"""Problems are kept for the last this many runs (a week of 5-minute reconciles)."""
_WHERE_LIMIT = 512
_FIELD_LIMIT = 255
_SOURCE_LIMIT = 64


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def record_problems(
    engine: sa.Engine,
    run_id: int,
    problems: Sequence[SourceProblem],
    keep_runs: int = KEEP_RUNS,
) -> None:
    """Store `problems` as skipped by run `run_id` (nothing if none), and drop those of
    runs `keep_runs` or more before it."""
    if not problems:
        return
    rows = [
        {
            "run_id": run_id,
            "source": _clip(p.source, _SOURCE_LIMIT),
            "where": _clip(p.where, _WHERE_LIMIT),
            "field": _clip(p.field, _FIELD_LIMIT),
            "message": p.message,
            "decision": str(p.decision),
        }
        for p in problems
    ]
    with engine.begin() as conn:
        conn.execute(run_problems.insert(), rows)
        # A daemon re-reading a defective export every few minutes would grow this table
        # without end: only the problems of the last `keep_runs` runs are kept.
        conn.execute(run_problems.delete().where(run_problems.c.run_id <= run_id - keep_runs))


def load_problems(engine: sa.Engine, run_id: int) -> list[SourceProblem]:
    """Return the problems stored for run `run_id`, in the order they were met."""
    query = (
        sa.select(run_problems).where(run_problems.c.run_id == run_id).order_by(run_problems.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        SourceProblem(r.source, r.where, r.field, r.message, _decision(r.decision)) for r in rows
    ]


def problem_counts(engine: sa.Engine, run_ids: Collection[int]) -> dict[int, int]:
    """Return run id → number of problems stored, for the runs of `run_ids` that have any."""
    if not run_ids:
        return {}
    query = (
        sa.select(run_problems.c.run_id, sa.func.count())
        .where(run_problems.c.run_id.in_(sorted(run_ids)))
        .group_by(run_problems.c.run_id)
    )
    with engine.connect() as conn:
        return {int(run_id): int(count) for run_id, count in conn.execute(query)}


def count_by_decision(problems: Iterable[SourceProblem]) -> Counter[tuple[str, str]]:
    """Return (source, decision) → number of problems."""
    return Counter((p.source, str(p.decision)) for p in problems)


def _decision(text: str) -> Decision:
    try:
        return Decision(text)
    except ValueError:
        return Decision.SKIPPED  # written by a newer syncd: shown, never guessed as "held"
