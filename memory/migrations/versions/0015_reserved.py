"""Interrupted turns are recorded: ``messages.reply_state`` (issue 12, the outbox).

A user message written by the turn loop is ``pending`` until its reply is stored, then
``answered``, or ``interrupted`` when no reply came (the model failed or the stream
broke, the process died mid-reply, or the next turn of the session arrived first).
NULL is a message no turn answers (imported history, rows older than this revision).
The prompt leaves interrupted messages out and the UI marks them. The partial index
keeps "which turns are still pending" one small index read (the janitor asks it).

Rows older than this revision are marked where the history shows it: a user message
whose next live message is an error or incomplete reply, or another user message.

Job leases (issue 12) need no column: ``jobs.locked_at`` is the claim or last
heartbeat, and a lease ends ``LASTMILE_JOB_LEASE_S`` after it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("reply_state", sa.String(16)))
    op.create_index("ix_messages_reply_pending", "messages", ["reply_state"],
                    sqlite_where=sa.text("reply_state = 'pending'"),
                    postgresql_where=sa.text("reply_state = 'pending'"))
    m = sa.table("messages", sa.column("id", sa.Integer), sa.column("conversation_id", sa.Integer),
                 sa.column("role", sa.String), sa.column("status", sa.String),
                 sa.column("reply_state", sa.String))
    n, x = m.alias("n"), m.alias("x")
    after = (sa.select(sa.func.min(x.c.id)).where(x.c.conversation_id == m.c.conversation_id,
                                                  x.c.id > m.c.id, x.c.status != "superseded")
             .scalar_subquery())
    unanswered = sa.exists().where(n.c.id == after, sa.or_(
        n.c.role == "user", sa.and_(n.c.role == "assistant",
                                    n.c.status.in_(("error", "incomplete")))))
    op.get_bind().execute(sa.update(m).where(m.c.role == "user", m.c.status != "superseded",
                                             unanswered).values(reply_state="interrupted"))


def downgrade() -> None:
    op.drop_index("ix_messages_reply_pending", "messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("reply_state")
