"""Rolling session summaries with the message-id range they cover.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_summaries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.Integer(),
                  sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_id", sa.Integer(), nullable=False),
        sa.Column("to_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("conversation_id", "version",
                            name="uq_session_summaries_conversation_version"),
    )
    op.create_index("ix_session_summaries_conversation_id", "session_summaries", ["conversation_id"])
    op.create_index("ix_session_summaries_user_id", "session_summaries", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_session_summaries_user_id", table_name="session_summaries")
    op.drop_index("ix_session_summaries_conversation_id", table_name="session_summaries")
    op.drop_table("session_summaries")
