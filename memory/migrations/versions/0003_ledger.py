"""The cost ledger (one provider_calls row per attempt) and enforced daily budgets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _new_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("purpose", sa.String(32)),
        sa.Column("model", sa.String(200)),
        sa.Column("session_key", sa.String(128)),
        sa.Column("turn_id", sa.Integer),
        sa.Column("cost_usd", sa.Float),
        sa.Column("error_kind", sa.String(64)),
        sa.Column("day", sa.String(10)),
    )


def upgrade() -> None:
    # batch: SQLite cannot ALTER a column's nullability in place (it copies the table).
    with op.batch_alter_table("provider_calls") as batch:
        batch.alter_column("conversation_id", existing_type=sa.Integer, nullable=True)
        batch.alter_column("user_id", existing_type=sa.String(128), nullable=True)
        for column in _new_columns():
            batch.add_column(column)
    op.create_index("ix_provider_calls_day", "provider_calls", ["day"])
    op.create_index("ix_provider_calls_turn_id", "provider_calls", ["turn_id"])
    # Rows from before the ledger were one per chat turn, stamped in UTC.
    day = ("to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
           if op.get_bind().dialect.name == "postgresql" else "substr(started_at, 1, 10)")
    op.execute(f"UPDATE provider_calls SET purpose = 'chat', day = {day} WHERE day IS NULL")
    op.create_table(
        "budget_counters",
        sa.Column("scope", sa.String(160), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("reserved_nusd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("spent_nusd", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(160), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("spent_usd", sa.Float, nullable=False),
        sa.Column("cap_usd", sa.Float, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("scope", "day", "level", name="uq_budget_alerts_scope_day_level"),
    )


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("budget_counters")
    op.drop_index("ix_provider_calls_turn_id", "provider_calls")
    op.drop_index("ix_provider_calls_day", "provider_calls")
    op.execute("DELETE FROM provider_calls WHERE conversation_id IS NULL OR user_id IS NULL")
    with op.batch_alter_table("provider_calls") as batch:
        for column in _new_columns():
            batch.drop_column(column.name)
        batch.alter_column("user_id", existing_type=sa.String(128), nullable=False)
        batch.alter_column("conversation_id", existing_type=sa.Integer, nullable=False)
