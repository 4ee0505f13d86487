"""Findings an administrator must look at (`findings`): orphans on a terminal, and others.

`sync_findings` records what one look at one target found of one `kind`: each subject
seen is inserted (first time) or touched (`last_seen`, reopened if it was resolved), and
every open finding of that kind and target that was not seen again is resolved. Call it
only after a complete look: a failed observation must never resolve anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from syncd.ledger.schema import findings


@dataclass(frozen=True, slots=True)
class Finding:
    """One open or resolved finding."""

    kind: str
    target: str
    subject: str
    person_key: str | None
    detail: str | None
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None


def sync_findings(
    engine: sa.Engine, *, kind: str, target: str, seen: Mapping[str, str], now: datetime
) -> None:
    """Given subject → detail of everything of `kind` seen on `target`, record it (one
    transaction) and resolve the open findings of that kind and target not seen."""
    where = sa.and_(findings.c.kind == kind, findings.c.target == target)
    with engine.begin() as conn:
        known = {row.subject for row in conn.execute(sa.select(findings.c.subject).where(where))}
        for subject, detail in seen.items():
            if subject in known:
                conn.execute(
                    findings.update()
                    .where(where, findings.c.subject == subject)
                    .values(last_seen=now, detail=detail, resolved_at=None)
                )
            else:
                conn.execute(
                    findings.insert().values(
                        kind=kind,
                        target=target,
                        subject=subject,
                        person_key=subject,
                        detail=detail,
                        first_seen=now,
                        last_seen=now,
                    )
                )
        gone = sorted(known - set(seen))
        if gone:
            still_open = findings.c.resolved_at.is_(None)
            conn.execute(
                findings.update()
                .where(where, findings.c.subject.in_(gone), still_open)
                .values(resolved_at=now)
            )


def open_findings(engine: sa.Engine, kind: str | None = None) -> list[Finding]:
    """Return the unresolved findings (of `kind`, when given), by target then subject."""
    query = sa.select(findings).where(findings.c.resolved_at.is_(None))
    if kind is not None:
        query = query.where(findings.c.kind == kind)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(findings.c.target, findings.c.subject)).all()
    return [
        Finding(
            r.kind, r.target, r.subject, r.person_key, r.detail, r.first_seen, r.last_seen,
            r.resolved_at,
        )
        for r in rows
    ]  # fmt: skip
