"""Add `people.valid_from` / `people.valid_until` (indexed; each person's validity window
in UTC, copied from `data`) and partial indexes on `target_records` for settled and
unsettled records: a plan after a delta read then finds the people whose window boundary
fell due, the records that are not settled and each target's count of settled ones by
index, without loading every person and every record (`engine.instep`).

The upgrade fills the two columns from every person's stored JSON (the window is never
sealed: only a PIN is), so that no boundary is missed after it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from syncd.ledger.schema import SETTLED, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 2_000


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        batch.add_column(sa.Column("valid_from", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("valid_until", UtcDateTime(), nullable=True))
    _fill_windows(op.get_bind())
    op.create_index("ix_people_valid_from", "people", ["valid_from"])
    op.create_index("ix_people_valid_until", "people", ["valid_until"])
    where = {"sqlite_where": SETTLED, "postgresql_where": SETTLED}
    op.create_index("ix_target_records_settled", "target_records", ["target"], **where)
    unsettled = sa.not_(SETTLED)
    op.create_index(
        "ix_target_records_unsettled",
        "target_records",
        ["target", "person_key"],
        sqlite_where=unsettled,
        postgresql_where=unsettled,
    )


def _fill_windows(conn: sa.Connection) -> None:
    """Copy each stored person's window into the new columns, a batch at a time."""
    people = sa.table(
        "people",
        sa.column("key", sa.String),
        sa.column("data", sa.Text),
        sa.column("valid_from", UtcDateTime()),
        sa.column("valid_until", UtcDateTime()),
    )
    update = (
        people.update()
        .where(people.c.key == sa.bindparam("k"))
        .values(valid_from=sa.bindparam("f"), valid_until=sa.bindparam("u"))
    )
    rows = conn.execute(sa.select(people.c.key, people.c.data)).all()
    for start in range(0, len(rows), _BATCH):
        batch = []
        for key, data in rows[start : start + _BATCH]:
            stored = json.loads(data)
            start_at, end_at = _utc(stored.get("valid_from")), _utc(stored.get("valid_until"))
            if start_at is not None or end_at is not None:
                batch.append({"k": key, "f": start_at, "u": end_at})
        if batch:
            conn.execute(update, batch)


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def downgrade() -> None:
    op.drop_index("ix_target_records_unsettled", "target_records")
    op.drop_index("ix_target_records_settled", "target_records")
    op.drop_index("ix_people_valid_until", "people")
    op.drop_index("ix_people_valid_from", "people")
    with op.batch_alter_table("people") as batch:
        batch.drop_column("valid_until")
        batch.drop_column("valid_from")
