"""Runs whose process died: marked interrupted, with the counts their changes give.

A run ended by Ctrl-C or SIGTERM records its own end (`Syncer.apply`). A process killed
outright (`kill -9`, a power cut, the OOM killer) cannot: its `runs` row stays
"running". The next run that takes the run lock closes it: while that lock is held no
other process is working on the ledger's terminals, so every non-dry run still
"running" belongs to a process that is gone. Its counts are rebuilt from the `changes`
it recorded (each outcome is committed as it happens), per target and outcome, the
shape `ApplyResult.as_counts` gives a finished run.

Dry runs (`plan`) take no lock and are recorded at once; they are never touched here.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa

from syncd.ledger.schema import changes, runs
from syncd.model import canonical_json

DEAD_MESSAGE = "interrupted: its process ended without recording its end (killed or crashed)"


def run_counts(engine: sa.Engine, run_id: int) -> dict[str, dict[str, int]]:
    """Return target → outcome → how many actions run `run_id` recorded."""
    query = (
        sa.select(changes.c.target, changes.c.outcome, sa.func.count())
        .where(changes.c.run_id == run_id)
        .group_by(changes.c.target, changes.c.outcome)
    )
    counts: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for target, outcome, number in conn.execute(query):
            counts.setdefault(str(target), Counter())[str(outcome)] = int(number)
    return {target: dict(sorted(c.items())) for target, c in sorted(counts.items())}


def close_dead_runs(engine: sa.Engine) -> list[int]:
    """Mark every non-dry run still "running" as interrupted, with its counts (see the
    module); return their ids. Its end is the time of the last change it recorded (else
    its start): when it died is not known, only that it did nothing after. Call only
    while holding the run lock (`ledger.runlock`), before starting a run of one's own."""
    query = sa.select(runs.c.id, runs.c.started_at).where(
        runs.c.outcome == "running", runs.c.dry_run.is_(False)
    )
    with engine.connect() as conn:
        dead = [(int(run_id), started) for run_id, started in conn.execute(query)]
    for run_id, started in dead:
        counts = run_counts(engine, run_id)
        last = sa.select(sa.func.max(changes.c.at)).where(changes.c.run_id == run_id)
        with engine.begin() as conn:
            ended: datetime = conn.execute(last).scalar() or started
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.outcome == "running")
                .values(
                    outcome="interrupted",
                    counts=canonical_json(counts),
                    finished_at=ended,
                    message=DEAD_MESSAGE,
                )
            )
    return [run_id for run_id, _ in dead]
