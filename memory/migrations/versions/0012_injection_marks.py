"""Chunks scanned for prompt injection at ingest carry their verdict.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: chunks stored before this revision are unscanned (the guards still scan
    # them when they are retrieved); a re-ingest of a changed file scans its new chunks.
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("injection_score", sa.Float()))
        batch.add_column(sa.Column("injection_rules", sa.String(500)))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("injection_rules")
        batch.drop_column("injection_score")
