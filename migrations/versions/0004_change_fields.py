"""Add `changes.fields`: each audited action's field values before and after (secret
fields redacted), so that `syncd audit` shows what changed, not digests. Older rows keep
NULL: their values were not kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("fields", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("fields")
