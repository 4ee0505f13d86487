"""Purging people and their templates: the only way a template leaves the ledger.

`purge_gone` is retention (run after each apply): people gone from every source for
longer than `delete_after` and held by no target any more leave the ledger, and their
templates with them. `purge_people` is the one operation that deletes them; in the same
transaction it writes the audit trail into `changes`, op "purge", outcome "applied",
target `LEDGER` (the ledger itself, not a door system: no target name can have this
form), linked to the run that purged (who: its kind and trigger in `runs`; when: `at`):

- one row per template, `before_digest` its (keyed) digest, `error` the reason and the
  modality and the terminal it was captured at; never the template bytes;
- one row per person, `before_digest` the person's (keyed) digest, `error` the reason.

A crash leaves either the purge and its audit rows, or neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from syncd.ledger.schema import changes, enrollments, people, target_records

PURGE_OP = "purge"
LEDGER = "(ledger)"
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Purged:
    """What one purge removed: how many people and templates."""

    people: int = 0
    templates: int = 0


def purge_gone(engine: sa.Engine, *, delete_after: timedelta, now: datetime, run_id: int) -> Purged:
    """Purge the people gone longer than `delete_after` and held by no target, with their
    templates, in one transaction audited under run `run_id`; return what left."""
    held = sa.select(target_records.c.person_key).where(target_records.c.person_key == people.c.key)
    due = sa.select(people.c.key).where(
        people.c.gone_since.is_not(None),
        people.c.gone_since <= now - delete_after,
        ~sa.exists(held),
    )
    days = delete_after / timedelta(days=1)
    reason = f"retention: gone from every source over {days:g} day(s), held by no target"
    with engine.begin() as conn:
        keys = list(conn.execute(due).scalars())
        return purge_people(conn, keys, run_id=run_id, reason=reason, now=now)


def purge_people(
    conn: Connection, keys: Sequence[str], *, run_id: int, reason: str, now: datetime
) -> Purged:
    """Delete the people `keys` and all their templates, and audit each under run
    `run_id` with `reason` (in the caller's transaction); return what was deleted.

    Keys the ledger does not hold are ignored. `reason` must hold no secret.
    """
    total = Purged()
    for start in range(0, len(keys), _CHUNK):
        part = keys[start : start + _CHUNK]
        found = _purge_part(conn, part, run_id, reason, now)
        total = Purged(total.people + found.people, total.templates + found.templates)
    return total


def _purge_part(
    conn: Connection, keys: Sequence[str], run_id: int, reason: str, now: datetime
) -> Purged:
    e, p = enrollments.c, people.c
    templates = conn.execute(
        sa.select(e.person_key, e.modality, e.digest, e.origin_target).where(e.person_key.in_(keys))
    ).all()
    persons = conn.execute(sa.select(p.key, p.digest).where(p.key.in_(keys))).all()
    rows = [
        _audit(
            run_id, t.person_key, t.digest, f"{reason}; {t.modality} from {t.origin_target}", now
        )
        for t in templates
    ]
    rows += [_audit(run_id, person.key, person.digest, reason, now) for person in persons]
    if rows:
        conn.execute(changes.insert(), rows)
    conn.execute(enrollments.delete().where(e.person_key.in_(keys)))
    conn.execute(people.delete().where(p.key.in_(keys)))
    return Purged(people=len(persons), templates=len(templates))


def _audit(run_id: int, person_key: str, digest: str, why: str, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "target": LEDGER,
        "person_key": person_key,
        "op": PURGE_OP,
        "outcome": "applied",
        "before_digest": digest,
        "after_digest": None,
        "error": why,
        "at": now,
    }
