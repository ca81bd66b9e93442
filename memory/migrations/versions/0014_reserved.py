"""Memory generations (issue 12): per-process memory is a cache SQL can invalidate.

``memory_generations`` holds one counter per user, bumped in the transaction of every
write that changes what the user's recall can return; ``memory_changes`` logs the source
ids each generation added or dropped (the delta a replica's cache applies; a drop with
no later add is a tombstone). No backfill: caches start cold after an upgrade.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_generations",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("floor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "memory_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
    )
    op.create_index("ix_memory_changes_user_generation", "memory_changes", ["user_id", "generation"])
    op.create_index("ix_memory_changes_user_source", "memory_changes", ["user_id", "source_id"])


def downgrade() -> None:
    op.drop_index("ix_memory_changes_user_source", table_name="memory_changes")
    op.drop_index("ix_memory_changes_user_generation", table_name="memory_changes")
    op.drop_table("memory_changes")
    op.drop_table("memory_generations")
