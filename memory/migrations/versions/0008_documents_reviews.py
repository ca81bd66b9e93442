"""Document corpora (sources, chunks) and the human review queue.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(140), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("pages", sa.Integer),
        sa.Column("chunk_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ingested_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "collection", "path", name="uq_sources_owner_path"),
    )
    op.create_index("ix_sources_owner", "sources", ["owner"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.Integer, sa.ForeignKey("sources.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("owner", sa.String(140), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("page", sa.Integer),
        sa.Column("char_start", sa.Integer, nullable=False),
        sa.Column("char_end", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_chunks_source_id", "chunks", ["source_id"])
    op.create_index("ix_chunks_owner_id", "chunks", ["owner", "id"])
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("session_key", sa.String(128)),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE")),
        sa.Column("question", sa.Text),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("details", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS),
    )
    op.create_index("ix_review_items_status", "review_items", ["status"])
    op.create_index("ix_review_items_user_id", "review_items", ["user_id"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("reviewer_id", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("edited_text", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_review_decisions_item_id", "review_decisions", ["item_id"])


def downgrade() -> None:
    op.drop_index("ix_review_decisions_item_id", "review_decisions")
    op.drop_table("review_decisions")
    op.drop_index("ix_review_items_user_id", "review_items")
    op.drop_index("ix_review_items_status", "review_items")
    op.drop_table("review_items")
    op.drop_index("ix_chunks_owner_id", "chunks")
    op.drop_index("ix_chunks_source_id", "chunks")
    op.drop_table("chunks")
    op.drop_index("ix_sources_owner", "sources")
    op.drop_table("sources")
