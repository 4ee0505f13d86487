"""Removals over time, from the `changes` audit: what the rolling-window cap counts.

A removal is an applied disable or delete; a person counts once per target in a window
(a leaver's disable and the delete after their grace period are one removal). One an
administrator released (an approved run, `--allow-deletes`) gets, in the same run, a
`changes` row of outcome "released" for the same target, person and op, written before
it is sent (`record_releases`), with the reason in `error` as a blocked row has it.
`syncd audit` shows it; the window count leaves such removals out. No table or column is
needed for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from syncd.ledger.schema import changes
from syncd.model import Action

RELEASED = "released"
_REMOVAL_OPS = ("disable", "delete")


@dataclass(frozen=True, slots=True)
class RecentRemovals:
    """One target's removals applied since some instant, counted per person.

    `counted`: the people with a removal not released by an administrator. `people`: the
    people with any removal applied, released or not: they are taken to have had access
    at the window's start, so that a share cap is a share of those people.
    """

    counted: int = 0
    people: int = 0


def removals_since(engine: sa.Engine, since: datetime) -> dict[str, RecentRemovals]:
    """Return, per target with any, the removals applied strictly after `since`."""
    removal = changes.c.op.in_(_REMOVAL_OPS)
    applied = sa.and_(changes.c.outcome == "applied", changes.c.at > since)
    # The runs that applied a removal in the window; their removal rows, applied or
    # released, grouped per (run, target, person, op): linear, whatever a run's size.
    runs = sa.select(changes.c.run_id).where(applied, removal).distinct()
    per_removal = (
        sa.select(
            changes.c.target,
            changes.c.person_key,
            changes.c.op,
            sa.func.max(sa.case((applied, 1), else_=0)).label("applied"),
            sa.func.max(sa.case((changes.c.outcome == RELEASED, 1), else_=0)).label("released"),
        )
        .where(removal, changes.c.run_id.in_(runs))
        .where(changes.c.outcome.in_(("applied", RELEASED)))
        .group_by(changes.c.run_id, changes.c.target, changes.c.person_key, changes.c.op)
        .subquery()
    )
    done = per_removal.c.applied == 1
    # One person counts once per target, however many removals they had in the window:
    # the delete that follows a leaver's disable takes no more access away, and counting
    # it twice would spend the cap and block the next real leaver's disable.
    per_person = (
        sa.select(
            per_removal.c.target,
            sa.func.max(sa.case((sa.and_(done, per_removal.c.released == 0), 1), else_=0)).label(
                "counted"
            ),
            sa.func.max(sa.case((done, 1), else_=0)).label("removed"),
        )
        .group_by(per_removal.c.target, per_removal.c.person_key)
        .subquery()
    )
    query = sa.select(
        per_person.c.target,
        sa.func.sum(per_person.c.counted),
        sa.func.sum(per_person.c.removed),
    ).group_by(per_person.c.target)
    with engine.connect() as conn:
        found = {
            str(target): RecentRemovals(int(counted or 0), int(people or 0))
            for target, counted, people in conn.execute(query)
        }
    return {target: recent for target, recent in found.items() if recent != RecentRemovals()}


def record_releases(
    engine: sa.Engine, run_id: int, actions: Iterable[Action], reason: str, now: datetime
) -> None:
    """Record that run `run_id` sends `actions` (removals) released by an administrator."""
    rows = [
        {
            "run_id": run_id,
            "target": a.target,
            "person_key": a.person_key,
            "op": a.op.value,
            "outcome": RELEASED,
            "before_digest": a.before_digest,
            "after_digest": None,
            "error": reason,
            "at": now,
        }
        for a in actions
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(changes.insert(), rows)
