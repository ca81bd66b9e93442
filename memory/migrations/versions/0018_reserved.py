"""Which document collections a chat may use (issue 16): ``conversations.collections``.

NULL is the default scope: every collection the user may read except the files attached
in *other* chats (``chat:<session key>`` collections), which stay with their own chat.
A JSON list is the person's explicit choice in the chat's picker. No data changes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("collections", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("collections")
