"""Drift reports and canary runs (issue 15): what the dashboard's drift panel and canary
history read, and what a replica checks before running either again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("recent_turns", sa.Integer, nullable=False),
        sa.Column("baseline_turns", sa.Integer, nullable=False),
        sa.Column("metrics", sa.JSON),
    )
    op.create_index("ix_drift_reports_created_at", "drift_reports", ["created_at"])
    op.create_table(
        "canary_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("results", sa.JSON),
    )
    op.create_index("ix_canary_runs_created_at", "canary_runs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_canary_runs_created_at", "canary_runs")
    op.drop_table("canary_runs")
    op.drop_index("ix_drift_reports_created_at", "drift_reports")
    op.drop_table("drift_reports")
