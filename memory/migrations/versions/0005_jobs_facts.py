"""Durable job queue (outbox) and fact memory with provenance.

``jobs``: background work (fact extraction, summaries) that must wait out provider
outages and survive restarts; the partial unique index keeps one *queued* job per
dedupe key on both SQLite and PostgreSQL. ``facts``: every version of every fact about
a user, with its source message ids and validity interval (history is never deleted).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_QUEUED_WITH_KEY = sa.text("status = 'queued' AND dedupe_key IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(128)),
        sa.Column("dedupe_key", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(128)),
        sa.Column("locked_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_jobs_kind", "jobs", ["kind"])
    op.create_index("ix_jobs_user_id", "jobs", ["user_id"])
    op.create_index("ix_jobs_claim", "jobs", ["status", "run_after"])
    op.create_index("uq_jobs_queued_dedupe", "jobs", ["dedupe_key"], unique=True,
                    sqlite_where=_QUEUED_WITH_KEY, postgresql_where=_QUEUED_WITH_KEY)

    op.create_table(
        "facts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source_ids", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("extractor", sa.String(32)),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("supersedes", sa.Integer(), sa.ForeignKey("facts.id", ondelete="SET NULL")),
        sa.Column("superseded_by", sa.Integer(), sa.ForeignKey("facts.id", ondelete="SET NULL")),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_facts_user_id", "facts", ["user_id"])
    op.create_index("ix_facts_user_status_key", "facts", ["user_id", "status", "key"])


def downgrade() -> None:
    op.drop_table("facts")
    op.drop_table("jobs")
