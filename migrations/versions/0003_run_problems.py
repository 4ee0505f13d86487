"""Add `run_problems`: the source records each run (apply or dry run) had to skip.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_problems",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("where", sa.String(512), nullable=False),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_problems"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_problems_run_id_runs"),
    )
    op.create_index("ix_run_problems_run_id", "run_problems", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_problems_run_id", table_name="run_problems")
    op.drop_table("run_problems")
