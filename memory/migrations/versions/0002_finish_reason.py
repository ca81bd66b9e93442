"""Record why a reply ended (stop / length), so a reply cut at the token limit is visible.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("finish_reason", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("finish_reason")
