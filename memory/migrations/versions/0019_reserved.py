"""Issue 16, admin settings: ``control_flags.value`` holds text, not 200 characters.

The Settings tab stores its overrides as ``control_flags`` rows (``setting:<field>``,
JSON), like the budget caps; a system prompt is longer than the old column allowed
(PostgreSQL refused it; SQLite never checked).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("control_flags") as batch:
        batch.alter_column("value", type_=sa.Text(), existing_type=sa.String(200),
                           existing_nullable=False)


def downgrade() -> None:
    # Overrides too long for the old column go (the processes fall back to their settings).
    flags = sa.table("control_flags", sa.column("name", sa.String), sa.column("value", sa.Text))
    op.get_bind().execute(sa.delete(flags).where(sa.func.length(flags.c.value) > 200))
    with op.batch_alter_table("control_flags") as batch:
        batch.alter_column("value", type_=sa.String(200), existing_type=sa.Text(),
                           existing_nullable=False)
