"""Reserved: verdicts beside the reply text (issue 13). No schema change yet.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
