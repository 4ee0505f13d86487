"""Per-target health: failed runs in a row, quarantine, last success (`target_health`).

A target whose runs fail `quarantine_after` times in a row is quarantined: reported in
`status` and the report, and tried again only every `quarantine_retry_s`, so it never
delays the others. One successful run lifts the quarantine. Which runs fail is decided
by `engine.health`: target-level failures only, never records the target refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from syncd.ledger.schema import target_health


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """One target's health as the ledger records it."""

    target: str
    consecutive_failures: int = 0
    quarantined_since: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None

    @property
    def quarantined(self) -> bool:
        """True while the target is quarantined."""
        return self.quarantined_since is not None


def load_health(engine: sa.Engine) -> dict[str, TargetHealth]:
    """Return every target's health, by target name."""
    with engine.connect() as conn:
        return {
            row.target: TargetHealth(
                row.target,
                row.consecutive_failures,
                row.quarantined_since,
                row.last_success_at,
                row.last_failure_at,
                row.last_error,
            )
            for row in conn.execute(sa.select(target_health))
        }


def record_run_outcomes(
    engine: sa.Engine,
    succeeded: Iterable[str],
    failed: Mapping[str, str],
    *,
    now: datetime,
    quarantine_after: int,
) -> None:
    """Record which targets' runs succeeded and which failed (with why), in one transaction."""
    current = load_health(engine)
    with engine.begin() as conn:
        for target in succeeded:
            _upsert(
                conn,
                target in current,
                target,
                {
                    "consecutive_failures": 0,
                    "quarantined_since": None,
                    "last_success_at": now,
                    "last_error": None,
                },
            )
        for target, error in failed.items():
            before = current.get(target, TargetHealth(target))
            failures = before.consecutive_failures + 1
            quarantined = before.quarantined_since
            if quarantined is None and failures >= quarantine_after:
                quarantined = now
            _upsert(
                conn,
                target in current,
                target,
                {
                    "consecutive_failures": failures,
                    "quarantined_since": quarantined,
                    "last_failure_at": now,
                    "last_error": error,
                },
            )


def _upsert(conn: sa.Connection, exists: bool, target: str, values: dict[str, object]) -> None:
    if exists:
        conn.execute(
            target_health.update().where(target_health.c.target == target).values(**values)
        )
    else:
        values.setdefault("consecutive_failures", 0)
        conn.execute(target_health.insert().values(target=target, **values))
