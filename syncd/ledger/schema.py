"""The ledger's tables (SQLAlchemy Core). Every change here needs an Alembic revision.

- `people`: the last mapped Person per key, its digest, first/last seen, tombstone, and
  its validity window (indexed).
- `target_records`: per (target, person) what syncd pushed: remote id, digest, record
  (templates as digests, never bytes), state, retry bookkeeping, disabled/gone times.
- `enrollments`: per (person, modality) the template, encrypted at rest.
- `runs`: each plan/apply/backfill with its trigger, counts and outcome.
- `changes`: append-only audit of every action applied, failed or blocked, and of every
  removal an administrator released (outcome "released", `ledger.removals`).
- `cursors`: incremental positions (LDAP change stamps, device log ids, CLUe event ids).
- `run_problems`: the source records a run (apply or dry run) skipped, and what it decided.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite (which drops zones) reads back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; syncd stores aware times only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


people = sa.Table(
    "people",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("gone_since", UtcDateTime(), nullable=True),
    # The person's validity window (copies of `data`'s, in UTC; 0005): a plan after a
    # delta read finds whose window boundary fell due by index, not by decoding everyone.
    sa.Column("valid_from", UtcDateTime(), nullable=True, index=True),
    sa.Column("valid_until", UtcDateTime(), nullable=True, index=True),
)

target_records = sa.Table(
    "target_records",
    metadata,
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("person_key", sa.String(255), primary_key=True),
    sa.Column("remote_id", sa.String(255), nullable=True),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("record", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_by_syncd", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_since", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

_r = target_records.c
SETTLED: sa.ColumnElement[bool] = sa.and_(
    _r.state == sa.literal_column("'ok'"),
    _r.digest.is_not(None),
    _r.remote_id.is_not(None),
    _r.created_by_syncd.is_(sa.true()),
    _r.disabled_since.is_(None),
    _r.attempts == sa.literal_column("0"),
    _r.next_attempt_at.is_(None),
)
"""A *settled* record (`model.HeldTable`): state ok, pushed and created by syncd, active,
never failed. Each term is true or false, never NULL. Written with literals, not bound
parameters: a query states it word for word to use 0005's partial indexes (SQLite and
PostgreSQL match a partial index's condition only against the same expression)."""

# 0005 indexes `target_records` twice, partially: by target where SETTLED (each target's
# count of settled records) and by (target, person_key) where NOT SETTLED (the records
# that are not settled): a plan after a delta read needs those without reading a million
# rows (`engine.instep`). They are declared in the migration only: a `postgresql_where`
# here would import SQLAlchemy's PostgreSQL dialect into every SQLite command.

enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("person_key", sa.String(255), primary_key=True),
    sa.Column("modality", sa.String(32), primary_key=True),
    sa.Column("template", sa.LargeBinary, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("record_version", sa.Integer, nullable=False),
    sa.Column("origin_target", sa.String(64), nullable=False),
    sa.Column("captured_at", UtcDateTime(), nullable=False),
    sa.Column("seen_at", UtcDateTime(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("counts", sa.Text, nullable=False, default="{}"),
    sa.Column("message", sa.Text, nullable=True),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("person_key", sa.String(255), nullable=False, index=True),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("before_digest", sa.String(64), nullable=True),
    sa.Column("after_digest", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    # JSON {field: [before, after]} of the action, secrets redacted by the plan; NULL for
    # rows written before 0004 and for audit rows that change no record field.
    sa.Column("fields", sa.Text, nullable=True),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("remote_id", sa.String(128), nullable=False),
    sa.Column("occurred_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("person_key", sa.String(255), nullable=True, index=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("result", sa.String(32), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("collected_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("target", "remote_id"),
)
"""Access events from every target in one shape: time (UTC), target, person, type, result."""

target_health = sa.Table(
    "target_health",
    metadata,
    sa.Column("target", sa.String(64), primary_key=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("quarantined_since", UtcDateTime(), nullable=True),
    sa.Column("last_success_at", UtcDateTime(), nullable=True),
    sa.Column("last_failure_at", UtcDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
)
"""Per target: failed runs in a row, quarantine, last success (status, metrics)."""

findings = sa.Table(
    "findings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("person_key", sa.String(255), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("resolved_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("kind", "target", "subject"),
)
"""What an administrator must look at: orphans on a terminal, unknown enrollments,
templates matching another person, incompatible record versions. `kind` is one of
"orphan", "unknown_enrollment", "duplicate_template", "incompatible_template"."""

run_problems = sa.Table(
    "run_problems",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("where", sa.String(512), nullable=False),
    sa.Column("field", sa.String(255), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
)
"""Per run, each defective source record: where (file:line or DN), field, why, and the
decision (held / disabled / skipped). The message quotes a bad value only when it is not
a PIN (the mapping's rule), so no secret ends up here."""
