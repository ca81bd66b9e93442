"""Durable job queue (outbox) and fact memory with provenance.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # RESERVED: filled in by its owner


def downgrade() -> None:
    pass
