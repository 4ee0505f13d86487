"""Add access events, per-target health (quarantine) and findings for administrators.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("remote_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("person_key", sa.String(255), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("result", sa.String(32), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("collected_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("target", "remote_id", name="uq_events_target_remote_id"),
    )
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_index("ix_events_person_key", "events", ["person_key"])
    op.create_table(
        "target_health",
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("quarantined_since", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("target", name="pk_target_health"),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("person_key", sa.String(255), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.UniqueConstraint("kind", "target", "subject", name="uq_findings_kind_target_subject"),
    )


def downgrade() -> None:
    for table in ("findings", "target_health", "events"):
        op.drop_table(table)
