"""Forgotten facts keep id, key, dates and a hash, never their text.

``facts.text_sha256`` holds the sha256 of an erased fact's text (to recognise it if it
is ever told again, not to read it). Rows forgotten before this revision still hold
their text: they, and every earlier version of them (``supersedes``), are erased here.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("facts") as batch:
        batch.add_column(sa.Column("text_sha256", sa.String(64)))
    facts = sa.table("facts", sa.column("id", sa.Integer), sa.column("status", sa.String),
                     sa.column("text", sa.Text), sa.column("value", sa.Text),
                     sa.column("supersedes", sa.Integer), sa.column("text_sha256", sa.String))
    bind = op.get_bind()
    rows = {r.id: r for r in bind.execute(sa.select(facts.c.id, facts.c.status, facts.c.text,
                                                    facts.c.supersedes))}
    erase: set[int] = set()
    for row in rows.values():
        current = row if row.status == "forgotten" else None
        while current is not None and current.id not in erase:
            erase.add(current.id)
            current = rows.get(current.supersedes) if current.supersedes is not None else None
    for fact_id in sorted(erase):
        text = rows[fact_id].text or ""
        bind.execute(sa.update(facts).where(facts.c.id == fact_id).values(
            text="", value="", text_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
            if text else None))


def downgrade() -> None:
    # The erased text is gone for good; only the column goes.
    with op.batch_alter_table("facts") as batch:
        batch.drop_column("text_sha256")
