"""Create every table of the ledger: people, target_records, enrollments, runs, changes, cursors.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("gone_since", TS, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_people"),
    )
    op.create_table(
        "target_records",
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("person_key", sa.String(255), nullable=False),
        sa.Column("remote_id", sa.String(255), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("record", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by_syncd", sa.Boolean, nullable=False),
        sa.Column("disabled_since", TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("target", "person_key", name="pk_target_records"),
    )
    op.create_table(
        "enrollments",
        sa.Column("person_key", sa.String(255), nullable=False),
        sa.Column("modality", sa.String(32), nullable=False),
        sa.Column("template", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("record_version", sa.Integer, nullable=False),
        sa.Column("origin_target", sa.String(64), nullable=False),
        sa.Column("captured_at", TS, nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("person_key", "modality", name="pk_enrollments"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("person_key", sa.String(255), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("before_digest", sa.String(64), nullable=True),
        sa.Column("after_digest", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_changes_run_id_runs"),
    )
    op.create_index("ix_changes_run_id", "changes", ["run_id"])
    op.create_index("ix_changes_person_key", "changes", ["person_key"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_cursors"),
    )


def downgrade() -> None:
    for table in ("cursors", "changes", "runs", "enrollments", "target_records", "people"):
        op.drop_table(table)
